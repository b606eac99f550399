"""The sans-IO AT decoder: byte by byte, split reads, interleaved URCs, echo, prompt, junk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem.at import (
    AtDecoder,
    AtEvent,
    Echo,
    Final,
    FinalKind,
    Info,
    Junk,
    Prompt,
    Urc,
    reply_prefix,
)

PDU = "0791947101670000060 10C91946110112233621122404350006211224043500000".replace(" ", "")


def run(chunks: list[bytes], command: str | None = None, **begin: object) -> list[AtEvent]:
    d = AtDecoder()
    if command is not None:
        d.begin(command, **begin)  # type: ignore[arg-type]
    out: list[AtEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_reply_prefix_of_extended_commands():
    assert reply_prefix("AT+CPIN?") == "+CPIN"
    assert reply_prefix("AT+CMGS=16") == "+CMGS"
    assert reply_prefix("AT^ICCID?") == "^ICCID"
    assert reply_prefix("ATE0") is None


def test_simple_reply_and_ok():
    events = run([b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n"], "AT+CSQ")
    assert events == [Info("+CSQ: 21,99"), Final(FinalKind.OK, text="OK")]


def test_error_finals_with_codes():
    events = run([b"\r\n+CMS ERROR: 331\r\n+CME ERROR: 14\r\nERROR\r\n"], "AT+CMGS=16")
    assert events == [
        Final(FinalKind.CMS_ERROR, 331, "+CMS ERROR: 331"),
        Final(FinalKind.CME_ERROR, 14, "+CME ERROR: 14"),
        Final(FinalKind.ERROR, text="ERROR"),
    ]


def test_text_cme_error_has_no_code():
    (ev,) = run([b"\r\n+CME ERROR: SIM busy\r\n"], "AT+CPIN?")
    assert ev == Final(FinalKind.CME_ERROR, None, "+CME ERROR: SIM busy")


def test_vendor_final_command_not_support():
    # Huawei E1752 (python-gsmmodem fakemodems): non-standard error final.
    (ev,) = run([b"\r\nCOMMAND NOT SUPPORT\r\n"], "AT+WIND?")
    assert isinstance(ev, Final) and ev.kind is FinalKind.VENDOR_ERROR and not ev.ok


def test_reply_only_when_prefix_matches_in_flight_command():
    events = run([b'\r\n+CMTI: "SM",3\r\n+CPIN: READY\r\nOK\r\n'], "AT+CPIN?")
    assert events == [
        Urc("+CMTI", '"SM",3', '+CMTI: "SM",3'),
        Info("+CPIN: READY"),
        Final(FinalKind.OK, text="OK"),
    ]


def test_zte_urcs_interleaved_with_cmgs_reply():
    # python-gsmmodem test_sendSmsResponseMixedWithUnsolictedMessages (ZTE, github issue #11).
    d = AtDecoder()
    d.begin("AT+CMGS=25", prompt=True)
    before = d.feed(b'+ZDONR: "METEOR",272,3,"CS_ONLY","ROAM_OFF"\r\n+ZPASR: "UMTS"\r\n> \r\n')
    assert [type(e) for e in before] == [Urc, Urc, Prompt]
    after = d.feed(
        b'+ZDONR: "METEOR",272,3,"CS_PS","ROAM_OFF"\r\n+ZPASR: "UMTS"\r\n+CMGS: 142\r\nOK\r\n'
    )
    assert [type(e) for e in after] == [Urc, Urc, Info, Final]
    assert after[2] == Info("+CMGS: 142")


def test_prompt_without_line_end_and_split():
    events = run([b"\r\n", b">", b" "], "AT+CMGS=16", prompt=True)
    assert events == [Prompt()]


def test_prompt_only_when_expected():
    # A ">" line outside a CMGS is noise, not a prompt.
    events = run([b"\r\n> \r\n"], "AT+CSQ")
    assert Prompt() not in events


def test_pdu_echo_after_prompt_is_tolerated():
    d = AtDecoder()
    d.begin("AT+CMGS=16", prompt=True)
    assert d.feed(b"AT+CMGS=16\r\r\n> ") == [Echo("AT+CMGS=16"), Prompt()]
    d.expect_echo("0031000C919461101122330000AA02C834")
    events = d.feed(b"0031000C919461101122330000AA02C834\x1a\r\n+CMGS: 1\r\n\r\nOK\r\n")
    assert events == [
        Echo("0031000C919461101122330000AA02C834"),
        Info("+CMGS: 1"),
        Final(FinalKind.OK, text="OK"),
    ]


def test_echo_of_command_even_after_ate0():
    events = run([b"AT+CSQ\r\r\n+CSQ: 5,0\r\n\r\nOK\r\n"], "AT+CSQ")
    assert events[0] == Echo("AT+CSQ")
    assert events[1:] == [Info("+CSQ: 5,0"), Final(FinalKind.OK, text="OK")]


def test_cds_urc_carries_its_pdu_line():
    events = run([f"\r\n+CDS: 25\r\n{PDU}\r\n".encode()])
    assert events == [Urc("+CDS", "25", "+CDS: 25", 0, data=PDU)]


def test_cmt_urc_with_empty_alpha():
    pdu = b"07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    events = run([b"\r\n+CMT: ,23\r\n" + pdu + b"\r\n"])
    assert len(events) == 1 and isinstance(events[0], Urc)
    assert events[0].name == "+CMT" and events[0].data and events[0].data.startswith("0791")


def test_ds_suffix_means_sim_two():
    events = run([b'\r\n+CMTIDS: "SM",4\r\nRINGDS\r\n+CDSIDS: "SR",2\r\n'])
    assert [(e.name, e.slot) for e in events if isinstance(e, Urc)] == [
        ("+CMTI", 1),
        ("RING", 1),
        ("+CDSI", 1),
    ]


def test_cdsds_switch_notice_is_not_a_status_report():
    # SIM800C-DS names its SIM switch +CDSDS; it must not swallow the next line as a PDU.
    events = run([b"\r\n+CDSDS: SIM1,1,0\r\nOK\r\n"])
    assert events[0] == Urc("+CDSDS", "SIM1,1,0", "+CDSDS: SIM1,1,0", 0)
    assert events[1] == Final(FinalKind.OK, text="OK")


def test_sim_two_status_report_during_a_cdsds_command_keeps_its_pdu():
    # The report of a part just sent on SIM 2 arrives as "+CDSDS: <length>" while the agent's
    # next command, a switch or a query of the active SIM (AT+CDSDS), is in flight: the same
    # prefix as that command's reply. Taken for the reply, the PDU line was dropped as junk and
    # the message waited for a report that had come (found by the chaos suite).
    for command in ("AT+CDSDS=1", "AT+CDSDS?"):
        events = run([f"\r\n+CDSDS: 25\r\n{PDU}\r\n+CDSDS: SIM1,1,0\r\nOK\r\n".encode()], command)
        assert events == [
            Urc("+CDS", "25", "+CDSDS: 25", 1, data=PDU),
            Info("+CDSDS: SIM1,1,0"),
            Final(FinalKind.OK, text="OK"),
        ], command
        # Byte by byte, the same.
        data = f"\r\n+CDSDS: 25\r\n{PDU}\r\nOK\r\n".encode()
        assert run(bytewise(data), command)[0] == Urc("+CDS", "25", "+CDSDS: 25", 1, data=PDU)


def test_bare_number_reply_to_cdsds_is_still_a_reply():
    # Some firmware answers AT+CDSDS? with just the slot: no PDU follows, so it is the reply.
    events = run([b"\r\n+CDSDS: 2\r\nOK\r\n"], "AT+CDSDS?")
    assert events == [Info("+CDSDS: 2"), Final(FinalKind.OK, text="OK")]


def test_cmgl_listing_pairs_headers_with_pdus():
    events = run(
        [b"\r\n+CMGL: 1,0,,23\r\n07AB\r\n+CMGL: 2,1,,24\r\n07CD\r\n\r\nOK\r\n"], "AT+CMGL=4"
    )
    assert events == [
        Info("+CMGL: 1,0,,23", data="07AB"),
        Info("+CMGL: 2,1,,24", data="07CD"),
        Final(FinalKind.OK, text="OK"),
    ]


def test_cmgr_header_without_pdu_then_ok():
    events = run([b"\r\n+CMGR: 0,,0\r\n\r\nOK\r\n"], "AT+CMGR=1")
    assert events == [Info("+CMGR: 0,,0", data=None), Final(FinalKind.OK, text="OK")]


def test_bare_replies_accepted_only_when_command_has_them():
    assert run([b"\r\n490154203237518\r\nOK\r\n"], "AT+CGSN", bare=True)[0] == Info(
        "490154203237518"
    )
    # Boot URCs are never taken as a bare reply.
    events = run([b"\r\nCall Ready\r\nSMS Ready\r\nSIMCOM_Ltd\r\nOK\r\n"], "AT+CGMI", bare=True)
    assert [type(e) for e in events] == [Urc, Urc, Info, Final]


def test_unexpected_bare_line_without_command_is_unknown_urc():
    (ev,) = run([b"\r\nhello there\r\n"])
    assert ev == Urc("", "hello there", "hello there")


def test_huawei_double_cr_and_blank_lines():
    # Huawei E1752 frames lines with \r\r\n and adds blank lines.
    events = run([b"\r\r\nE1752\r\r\n\r\r\n\r\r\nOK\r\r\n"], "AT+CGMM", bare=True)
    assert events == [Info("E1752"), Final(FinalKind.OK, text="OK")]


def test_boot_noise_and_junk_are_skipped():
    events = run([b"\x00\x00\xff\r\nRDY\r\n\xfe\xfd\xfc\xfb\r\n+CFUN: 1\r\n"])
    assert events[0] == Urc("RDY", "", "RDY")
    assert isinstance(events[1], Junk)
    assert events[2] == Urc("+CFUN", "1", "+CFUN: 1")


def test_control_characters_are_junk():
    events = run([b"\r\nab\x07cd\r\nOK\r\n"], "AT")
    assert isinstance(events[0], Junk)
    assert events[1] == Final(FinalKind.OK, text="OK")


def test_buffer_is_bounded():
    d = AtDecoder(max_line=64)
    events = d.feed(b"A" * 1000)
    events += d.feed(b"\r\nOK\r\n")
    assert isinstance(events[0], Junk)
    assert events[-1] == Final(FinalKind.OK, text="OK")
    assert len(d._buf) == 0


def test_vendor_noise_urcs():
    data = b'\r\n^RSSI: 17\r\n+QIND: SMS DONE\r\n+ZPASR: "UMTS"\r\n^BOOT: 1,0,0,0\r\n'
    names = [e.name for e in run([data]) if isinstance(e, Urc)]
    assert names == ["^RSSI", "+QIND", "+ZPASR", "^BOOT"]


def test_reset_reports_lost_partial_input():
    d = AtDecoder()
    d.feed(b"\r\n+CSQ: 1")
    (j,) = d.reset()
    assert isinstance(j, Junk)
    assert d.feed(b"\r\nOK\r\n") == [Final(FinalKind.OK, text="OK")]


# A transcript mixing everything: it must decode the same however it is chunked.
TRANSCRIPT = (
    b"AT+CMGS=25\r\r\n"
    b'+ZDONR: "METEOR",272,3,"CS_ONLY","ROAM_OFF"\r\n'
    b"\r\n> "
    b"0031000C919461101122330000AA02C834\x1a\r\n"
    b'+CMTI: "SM",3\r\n' + f"\r\n+CDS: 25\r\n{PDU}\r\n".encode() + b'+ZPASR: "UMTS"\r\n'
    b"+CMGS: 142\r\n"
    b"\r\nOK\r\n"
    b"\r\n^RSSI: 12\r\n"
)


def _decode_chunked(chunks: list[bytes]) -> list[AtEvent]:
    d = AtDecoder()
    d.begin("AT+CMGS=25", prompt=True)
    d.expect_echo("0031000C919461101122330000AA02C834")
    out: list[AtEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out


EXPECTED = _decode_chunked([TRANSCRIPT])


def test_transcript_reference_decoding():
    assert [type(e).__name__ for e in EXPECTED] == [
        "Echo",
        "Urc",
        "Prompt",
        "Echo",
        "Urc",
        "Urc",
        "Urc",
        "Info",
        "Final",
        "Urc",
    ]
    cds = EXPECTED[5]
    assert isinstance(cds, Urc) and cds.data == PDU


def test_split_at_every_offset():
    for i in range(len(TRANSCRIPT) + 1):
        assert _decode_chunked([TRANSCRIPT[:i], TRANSCRIPT[i:]]) == EXPECTED, i


def test_byte_by_byte():
    assert _decode_chunked(bytewise(TRANSCRIPT)) == EXPECTED


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=30))
def test_any_chunking_gives_the_same_events(cuts: list[int]):
    points = sorted(set(cuts))
    chunks = [
        TRANSCRIPT[a:b] for a, b in zip([0, *points], [*points, len(TRANSCRIPT)], strict=True)
    ]
    assert _decode_chunked(chunks) == EXPECTED


# Arbitrary bytes in any chunking, under any command: the fuzz target in tests/fuzz/decoders.py.


class _BytewiseDecoder(AtDecoder):
    """The decoder as it was before lines were taken in slices: every byte through the same
    steps, the reference the sliced `feed` must agree with."""

    def feed(self, data: bytes) -> list[AtEvent]:
        out: list[AtEvent] = []
        for b in data:
            self._byte(b, out)
        return out


_TOKENS = [b"\r", b"\n", b"\r\n", b"OK", b"ERROR", b"> ", b">", b" ", b"\x00", b"\xff", b"\x1a",
           b"+CMGS: 12", b"+CDS: 25", PDU.encode(), b"+CMS ERROR: 500", b'+CMTI: "SM",3',
           b"AT+CMGS=25", b"RING", b"x" * 70, b"\xe9"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=40),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    st.sampled_from([None, "AT+CMGS=25", "AT+CSQ", "AT+CGSN"]),
)
def test_sliced_lines_decode_as_byte_by_byte(
    tokens: list[bytes], cuts: list[int], command: str | None
) -> None:
    data = b"".join(tokens)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    sliced, bytewise = AtDecoder(max_line=64), _BytewiseDecoder(max_line=64)
    if command is not None:
        for d in (sliced, bytewise):
            d.begin(command, prompt=command.startswith("AT+CMGS"))
    got = [ev for c in chunks for ev in sliced.feed(c)]
    assert got == bytewise.feed(data)
