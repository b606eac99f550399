"""The async AT channel over the in-memory transport (and once over a real pty): one command in
flight, timeouts, ESC."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem.at import Urc
from simhive.agent.modem.atchannel import AtChannel, AtCommandError, AtTimeout, ChannelClosed, quote
from simhive.agent.modem.transport import MemoryTransport, SerialTransport
from tests.modem.fakemodem import FakeModem


async def open_channel(replies: dict[str, str] | None = None):
    t = MemoryTransport()
    fm = FakeModem(t, replies)
    urcs: list[Urc] = []
    ch = AtChannel(t, on_urc=urcs.append)
    await ch.open()
    return t, fm, ch, urcs


async def test_reply_written_synchronously_is_not_lost():
    # The fake answers inside write(): only a waiter registered before the write sees it.
    _, _, ch, _ = await open_channel()
    resp = await ch.command("AT+CSQ")
    assert resp.first("+CSQ") == "21,99"
    await ch.close()


async def test_error_final_raises_with_code():
    _, fm, ch, _ = await open_channel({"AT+CPMS=?": "+CMS ERROR: 302"})
    with pytest.raises(AtCommandError) as err:
        await ch.command("AT+CPMS=?")
    assert err.value.cms == 302 and err.value.cme is None
    await ch.close()


async def test_commands_are_serialised():
    t, fm, ch, _ = await open_channel()
    results = await asyncio.gather(*(ch.command("AT+CSQ") for _ in range(5)))
    assert all(r.first("+CSQ") == "21,99" for r in results)
    assert fm.commands.count("AT+CSQ") == 5
    await ch.close()


async def test_timeout_then_drain_barrier_resyncs():
    t, fm, ch, _ = await open_channel()
    late: list[str] = []

    def hook(cmd: str) -> str | None:
        if cmd == "AT+CSQ" and not late:
            late.append(cmd)
            return ""  # swallow: the answer comes "late", after the timeout
        return None

    fm.hook = hook
    with pytest.raises(AtTimeout) as err:
        await ch.command("AT+CSQ", wait=0.2)
    assert err.value.stage == "final"
    assert fm.commands[-1] == "AT+CMEE?"  # the barrier (not CSQ, the abandoned command)
    fm.hook = None
    # A stale reply arriving now must not be taken as the next command's answer.
    fm.lines("+CSQ: 3,0\nOK")
    await asyncio.sleep(0.05)
    resp = await ch.command("AT+CIMI", bare=True, prefixes=("+CIMI",))
    assert resp.text == ["262011234567890"]
    await ch.close()


async def test_stuck_prompt_is_cancelled_with_esc():
    t, fm, ch, _ = await open_channel()
    fm.no_prompt = True
    with pytest.raises(AtTimeout) as err:
        await ch.submit_pdu(16, "0031000C919461101122330000AA02C834", prompt_wait=0.2)
    assert err.value.stage == "prompt"
    assert b"\x1b" in t.written[t.written.index(b"AT+CMGS=16") :]
    assert not ch.pdu_written
    await ch.close()


async def test_submit_and_reference():
    _, fm, ch, _ = await open_channel()
    resp = await ch.submit_pdu(16, "0031000C919461101122330000AA02C834")
    assert resp.first("+CMGS") == "1"
    assert fm.submitted == ["0031000C919461101122330000AA02C834"]
    assert ch.pdu_written
    await ch.close()


async def test_unplug_while_waiting_for_the_prompt_is_closed_not_a_timeout():
    t, fm, ch, _ = await open_channel()
    fm.no_prompt = True
    submit = asyncio.create_task(ch.submit_pdu(16, "00AA", prompt_wait=5.0))
    await asyncio.sleep(0.05)
    t.unplug()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(submit, 1.0)  # at once, not after prompt_wait
    assert not ch.pdu_written


async def test_unplug_after_the_pdu_is_closed_not_a_timeout():
    t, fm, ch, _ = await open_channel()
    fm._submit = lambda pdu_hex: None  # the prompt, then no final
    submit = asyncio.create_task(ch.submit_pdu(16, "00AA", wait=5.0))
    await asyncio.sleep(0.05)
    t.unplug()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(submit, 1.0)
    assert ch.pdu_written  # "maybe sent": the caller must not retry it blindly


async def test_cms_error_before_prompt():
    _, fm, ch, _ = await open_channel()
    fm.hook = lambda cmd: "+CMS ERROR: 330" if cmd.startswith("AT+CMGS") else None
    with pytest.raises(AtCommandError) as err:
        await ch.submit_pdu(16, "00AA")
    assert err.value.cms == 330
    await ch.close()


async def test_urcs_reach_the_handler_during_a_command():
    _, fm, ch, urcs = await open_channel()
    fm.hook = lambda cmd: '+CMTI: "SM",7\n+CSQ: 9,0\nOK' if cmd == "AT+CSQ" else None
    resp = await ch.command("AT+CSQ")
    assert resp.first("+CSQ") == "9,0"
    assert [u.line for u in urcs] == ['+CMTI: "SM",7']
    await ch.close()


async def test_unplug_fails_the_waiting_command():
    t, fm, ch, _ = await open_channel()
    fm.silent = True
    task = asyncio.create_task(ch.command("AT+CSQ", wait=10))
    await asyncio.sleep(0.05)
    t.unplug()
    with pytest.raises(ChannelClosed):
        await task
    assert not ch.is_open
    with pytest.raises(ChannelClosed):
        await ch.command("AT")


async def test_implicit_final_for_wavecom_cpin():
    # Wavecom answers AT+CPIN? with "+CPIN: READY" and no OK (python-gsmmodem fakemodems).
    _, fm, ch, _ = await open_channel({"AT+CPIN?": "+CPIN: READY"})
    resp = await ch.command("AT+CPIN?", wait=3, implicit_final=True)
    assert resp.first("+CPIN") == "READY"
    await ch.close()


@pytest.mark.parametrize("bad", ['+49"; AT+CFUN=0', "a\rb", "x\x1a", "\x1b", "line\n"])
def test_quote_refuses_breakouts(bad: str):
    with pytest.raises(ValueError):
        quote(bad)


@pytest.mark.parametrize("bad", ["AT+CSQ\r", "AT\x1a", "AT+CMGS=1\x1b", "CSQ", "AT+CNUM\n"])
async def test_command_refuses_control_characters(bad: str):
    _, _, ch, _ = await open_channel()
    with pytest.raises(ValueError):
        await ch.command(bad)
    await ch.close()


async def test_submit_refuses_non_hex():
    _, _, ch, _ = await open_channel()
    with pytest.raises(ValueError):
        await ch.submit_pdu(3, "00GG\x1a")
    await ch.close()


URC_POOL = [
    '+CMTI: "SM",3',
    '+ZPASR: "UMTS"',
    "^RSSI: 14",
    "+CREG: 1",
    "+QIND: SMS DONE",
    "RING",
    '+CMTIDS: "SM",9',
]


STEP = st.tuples(
    st.sampled_from(["AT+CSQ", "AT+CGSN", "AT+CPMS=?"]),
    st.lists(st.sampled_from(URC_POOL), max_size=3),
    st.integers(0, 2),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=6))
def test_urcs_anywhere_never_corrupt_replies(script):
    """Whatever URCs land before, inside or after a reply, every command gets exactly its own
    reply lines and every URC reaches the handler, in order."""
    replies = {
        "AT+CSQ": ["+CSQ: 21,99"],
        "AT+CGSN": ["490154203237518"],
        "AT+CPMS=?": ['+CPMS: ("SM"),("SM"),("SM")'],
    }

    async def run() -> None:
        t, fm, ch, urcs = await open_channel()
        expected_urcs: list[str] = []
        for command, noise, where in script:
            lines = list(replies[command])
            body = lines[:where] + noise + lines[where:] if where < 2 else lines + noise
            answer = "\n".join([*body, "OK"])
            fm.hook = lambda cmd, a=answer, c=command: a if cmd == c else None
            resp = await ch.command(
                command,
                bare=command == "AT+CGSN",
                prefixes=None if command != "AT+CGSN" else ("+CGSN",),
            )
            assert resp.text == replies[command]
            expected_urcs += noise
        assert [u.line for u in urcs] == expected_urcs
        await ch.close()

    asyncio.run(run())


async def test_barrier_skips_the_late_final_of_the_abandoned_command():
    # A slow submit answers "+CMGS: 7" / "OK" after we gave up; that OK arrives while the
    # barrier waits and must not be taken for the barrier's own answer.
    t, fm, ch, urcs = await open_channel()
    pending: list[str] = []

    def hook(cmd: str) -> str | None:
        if cmd == "AT+CPMS=?":
            return ""  # no answer now
        if cmd == "AT+CSQ" and pending:
            # The late answer of the abandoned command comes first, then the barrier's own.
            pending.clear()
            return "+CMGS: 7\nOK\n+CSQ: 11,0\nOK"
        return None

    fm.hook = hook
    pending.append("late")
    with pytest.raises(AtTimeout):
        await ch.command("AT+CPMS=?", wait=0.2)
    fm.hook = None
    resp = await ch.command("AT+CNUM")
    assert resp.first("+CNUM") == '"","+4915112345678",145'
    assert any(u.name == "+CMGS" for u in urcs)  # the stale reply was routed aside, not lost
    await ch.close()


async def test_a_command_costs_two_callbacks_and_one_timer():
    """What the event loop schedules for one answered command: the answer wakes the caller's
    task (two callbacks: the future's and the task's step) under one deadline timer. Waiting
    through wait_for(shield(...)) cost five callbacks; an AT+CNMA per SMS pays this."""
    _, _, ch, _ = await open_channel()
    await ch.command("AT+CSQ")  # warm: nothing lazily made on the first command is counted
    loop = asyncio.get_running_loop()
    counts = {"call_soon": 0, "call_at": 0}

    def counting(name: str, real):
        def call(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return call

    loop.call_soon = counting("call_soon", loop.call_soon)  # type: ignore[method-assign]
    loop.call_at = counting("call_at", loop.call_at)  # type: ignore[method-assign]
    try:
        for _ in range(10):
            await ch.command("AT+CNMA")
    finally:
        del loop.call_soon, loop.call_at  # the class's methods again
    assert counts == {"call_soon": 20, "call_at": 10}
    await ch.close()


async def test_over_a_serial_port_an_answer_wakes_only_the_caller():
    """On a real port (a pty whose other side answers OK from the event loop), an answered
    command schedules one callback: the caller's wake-up. The answer is decoded in the port's
    reader callback itself; a reader task in between cost a wake-up and a task step more per
    chunk of input, about three chunks per SMS."""
    master, slave = os.openpty()
    loop = asyncio.get_running_loop()

    def modem() -> None:  # the other side: every command line is answered at once
        if b"\r" in os.read(master, 4096):
            os.write(master, b"\r\nOK\r\n")

    loop.add_reader(master, modem)
    ch = AtChannel(SerialTransport(os.ttyname(slave)))
    try:
        await ch.open()
        await ch.command("AT")  # warm: nothing lazily made on the first command is counted
        counts = {"call_soon": 0}
        real = loop.call_soon

        def counting(*args, **kwargs):
            counts["call_soon"] += 1
            return real(*args, **kwargs)

        loop.call_soon = counting  # type: ignore[method-assign,assignment]
        try:
            for _ in range(10):
                await ch.command("AT+CNMA")
        finally:
            del loop.call_soon  # the class's method again
        assert counts == {"call_soon": 10}
    finally:
        await ch.close()
        loop.remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
