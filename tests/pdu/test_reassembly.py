"""Incoming multipart reassembly: grouping, duplicates, order, timeouts, idempotency keys."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem.pdu import Concat, Deliver, decode_incoming, encode_deliver, split_text
from simhive.agent.modem.reassembly import Reassembler

TS = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deliver(
    text: str,
    concat: Concat | None = None,
    *,
    sender: str = "+491601112233",
    ts: datetime = TS,
    ref16: bool = False,
) -> Deliver:
    msg = decode_incoming(encode_deliver(sender, text, sc_timestamp=ts, concat=concat, ref16=ref16))
    assert isinstance(msg, Deliver)
    return msg


def parts_of(text: str, ref: int = 7, *, ref16: bool = False, **kw) -> list[Deliver]:
    _, chunks = split_text(text, ref16=ref16)
    n = len(chunks)
    return [deliver(c, Concat(ref, n, i), ref16=ref16, **kw) for i, c in enumerate(chunks, start=1)]


LONG = "The quick brown fox jumps over the lazy dog. " * 8  # 360 chars: 3 parts


def test_single_sms_is_released_at_once_with_a_stable_key() -> None:
    r = Reassembler(clock=Clock())
    a = r.add(deliver("hello"), storage=[("SM", 1)])
    b = r.add(deliver("hello"), storage=[("SM", 4)])
    assert a is not None and b is not None
    assert (a.text, a.parts, a.incomplete, a.storage) == ("hello", 1, False, (("SM", 1),))
    assert a.key == b.key  # the same SMS read twice
    assert r.pending == 0
    others = [
        deliver("hello!"),
        deliver("hello", sender="+491601112234"),
        deliver("hello", ts=TS + timedelta(seconds=1)),
    ]
    keys = {a.key} | {r.add(o).key for o in others}  # type: ignore[union-attr]
    assert len(keys) == 4
    assert r.add(deliver("hello"), scope="8949...2").key != a.key  # type: ignore[union-attr]


def test_parts_in_order_and_out_of_order() -> None:
    parts = parts_of(LONG)
    assert len(parts) == 3
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        r = Reassembler(clock=Clock())
        results = [r.add(parts[i], storage=[("SM", i)]) for i in order]
        assert results[:2] == [None, None]
        msg = results[2]
        assert msg is not None
        assert msg.text == LONG and msg.parts == 3 and not msg.incomplete
        assert msg.received_parts == (1, 2, 3) and msg.missing_parts == ()
        assert sorted(msg.storage) == [("SM", 0), ("SM", 1), ("SM", 2)]
        assert r.pending == 0


def test_keys_do_not_depend_on_arrival_order() -> None:
    parts = parts_of(LONG)
    r1 = Reassembler()
    k1 = [r1.add(p) for p in parts][-1]
    r = Reassembler()
    r.add(parts[2])
    r.add(parts[1])
    k2 = r.add(parts[0])
    assert k1 is not None and k2 is not None and k1.key == k2.key


def test_duplicate_part_is_ignored_but_its_storage_kept() -> None:
    parts = parts_of(LONG)
    r = Reassembler(clock=Clock())
    assert r.add(parts[0], storage=[("SM", 1)]) is None
    assert r.add(parts[0], storage=[("SM", 5)]) is None  # the network delivered it twice
    assert r.add(parts[1], storage=[("SM", 2)]) is None
    msg = r.add(parts[2], storage=[("SM", 3)])
    assert msg is not None and msg.text == LONG
    assert sorted(msg.storage) == [("SM", 1), ("SM", 2), ("SM", 3), ("SM", 5)]


def test_16bit_references() -> None:
    parts = parts_of(LONG, ref=0xBEEF, ref16=True)
    r = Reassembler()
    results = [r.add(p) for p in reversed(parts)]
    assert results[-1] is not None and results[-1].text == LONG


def test_groups_are_kept_apart() -> None:
    r = Reassembler()
    a = parts_of("A" * 200, ref=9)
    b = parts_of("B" * 200, ref=9, sender="+15550001111")  # same ref, other sender
    c = parts_of("C" * 400, ref=9)  # same sender and ref, other total
    d = parts_of("D" * 200, ref=9)
    assert r.add(a[0]) is None and r.add(b[0]) is None and r.add(c[0]) is None
    assert r.add(d[0], scope="sim2") is None  # same sender/ref on the other SIM
    assert r.pending == 4
    assert r.add(b[1]).text == "B" * 200  # type: ignore[union-attr]
    assert r.add(a[1]).text == "A" * 200  # type: ignore[union-attr]
    assert r.add(d[1], scope="sim2").text == "D" * 200  # type: ignore[union-attr]
    assert r.pending == 1


def test_timeout_releases_what_arrived_flagged_incomplete() -> None:
    clock = Clock()
    r = Reassembler(timeout=600, clock=clock)
    parts = parts_of(LONG)
    r.add(parts[0], storage=[("SM", 1)])
    clock.now += 100
    r.add(parts[2], storage=[("SM", 3)])
    assert r.next_deadline() == 1600.0
    clock.now = 1599.0
    assert r.expire() == []
    clock.now = 1600.0
    [msg] = r.expire()
    assert msg.incomplete and msg.parts == 3
    assert msg.received_parts == (1, 3) and msg.missing_parts == (2,)
    assert msg.text == parts[0].text + parts[2].text
    assert sorted(msg.storage) == [("SM", 1), ("SM", 3)]
    assert r.pending == 0 and r.next_deadline() is None and r.expire() == []
    r2 = Reassembler()
    complete = [r2.add(p) for p in parts][-1]
    assert complete is not None
    assert msg.key != complete.key  # an incomplete message is a different message


def test_late_repeat_of_a_released_message_gets_the_same_key() -> None:
    clock = Clock()
    r = Reassembler(timeout=600, clock=clock)
    parts = parts_of(LONG)
    msg = [r.add(p) for p in parts][-1]
    assert msg is not None
    clock.now += 10
    again = r.add(parts[1], storage=[("SM", 9)])
    assert again is not None and again.duplicate
    assert again.key == msg.key and again.text == LONG and again.storage == (("SM", 9),)
    # A new message that reuses the reference is not mistaken for a repeat.
    other = parts_of("other text " * 30)
    assert r.add(other[0]) is None
    # After the memory window a repeat starts a new group again.
    clock.now += 601
    r.expire()
    assert r.add(parts[1]) is None


def test_surrogate_pair_split_across_parts_by_the_sender() -> None:
    # Some phones split UCS2 at 67 units regardless of pairs; build such parts by hand.
    emoji = "😀".encode("utf-16-be")
    body1 = ("a" * 66).encode("utf-16-be") + emoji[:2]
    body2 = emoji[2:] + "b".encode("utf-16-be")

    def raw(body: bytes, seq: int) -> Deliver:
        udh = bytes([5, 0, 3, 0x42, 2, seq])
        pdu = bytes.fromhex("00440B919461101122F3000862112240435000")
        msg = decode_incoming(pdu + bytes([len(udh) + len(body)]) + udh + body)
        assert isinstance(msg, Deliver)
        return msg

    r = Reassembler()
    assert r.add(raw(body1, 1)) is None
    msg = r.add(raw(body2, 2))
    assert msg is not None and msg.text == "a" * 66 + "😀b"
    # Released alone, a half pair never leaks out as a lone surrogate.
    clock = Clock()
    r = Reassembler(clock=clock)
    r.add(raw(body1, 1))
    clock.now += 601
    [partial] = r.expire()
    assert partial.text == "a" * 66 + "\ufffd"
    partial.text.encode("utf-8")


def test_pending_groups_are_bounded() -> None:
    r = Reassembler(max_pending=3, clock=Clock())
    for ref in range(5):
        assert r.add(parts_of(LONG, ref=ref)[0]) is None
    assert r.pending == 3
    assert r.next_deadline() is not None
    pushed = r.expire()
    assert [m.incomplete for m in pushed] == [True, True]
    assert r.pending == 3


def test_to_incoming() -> None:
    msg = Reassembler().add(deliver("hi"), storage=[("ME", 2)])
    assert msg is not None
    now = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
    sms = msg.to_incoming(1, now)
    assert (sms.slot, sms.sender, sms.text, sms.sent_at, sms.received_at) == (
        1,
        "+491601112233",
        "hi",
        TS,
        now,
    )
    assert (sms.parts, sms.incomplete, sms.key, sms.storage) == (1, False, msg.key, [("ME", 2)])


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet="abc€😀Ж ", min_size=200, max_size=600),
    data=st.data(),
)
def test_any_order_with_repeats_gives_one_message(text, data) -> None:
    parts = parts_of(text, ref=200)
    feed = data.draw(st.permutations(parts + data.draw(st.lists(st.sampled_from(parts)))))
    r = Reassembler(clock=Clock())
    out = [m for m in (r.add(p) for p in feed) if m is not None]
    first = [m for m in out if not m.duplicate]
    assert len(first) == 1 and first[0].text == text and not first[0].incomplete
    assert all(m.key == first[0].key for m in out)


def test_memory_of_released_messages_is_bounded() -> None:
    r = Reassembler(max_pending=4, clock=Clock())
    for ref in range(20):
        for p in parts_of(LONG, ref=ref):
            r.add(p)
    assert len(r._released) == 4


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="xyz€Ж😀 ", min_size=1, max_size=400), min_size=1, max_size=6),
    data=st.data(),
)
def test_interleaved_messages_from_several_senders(texts, data) -> None:
    # Distinct (sender, reference) per message, as TS 23.040 requires of a sending entity.
    senders = ["+491601112233", "+15550001111", "Vodafone"]
    feed: list[tuple[int, Deliver]] = []
    for i, text in enumerate(texts):
        sender = senders[i % 3]
        # Each message has its own SC timestamp: identical single SMS from one sender within the
        # same second share a key by design (they are indistinguishable from a redelivery).
        ts = TS + timedelta(seconds=i)
        feed += [(i, p) for p in parts_of(text, ref=i, sender=sender, ts=ts)]
    feed = data.draw(st.permutations(feed))
    clock = Clock()
    r = Reassembler(timeout=600, clock=clock)
    done: dict[str, str] = {}
    for _, part in feed:
        clock.now += 1
        msg = r.add(part)
        if msg is not None:
            assert not msg.incomplete and msg.key not in done
            done[msg.key] = msg.text
    assert sorted(done.values()) == sorted(texts)
    assert r.pending == 0 and r.expire() == []
