"""Reassembly of incoming concatenated SMS, sans-IO (the clock is injected).

Parts are grouped on (scope, sender, reference, total), as TS 23.040 9.2.3.24.1 intends: the
reference alone repeats after 256 (or 65536) messages and is chosen per sender. `scope` keeps two
SIMs apart; pass the receiving SIM's ICCID (or its slot). A group is released when every part
arrived, or after `timeout` seconds from its first part with what arrived, flagged incomplete
(Gammu SMSD's MultipartTimeout has the same 600 s default).

Every released message carries an idempotency key derived only from what was received (scope,
sender, SC timestamps, reference, part numbers, texts), so re-reading the same stored parts after
a crash, or the network redelivering them, gives the same key and the server can drop the copy.
The price: two identical texts from one sender stamped by the SC in the same second share a key,
since nothing on the air tells them apart from a redelivery.
A part that repeats one of an already released message (within `timeout`) is answered with that
message again, same key, carrying only the repeat's storage so the caller can delete it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simhive.agent.modem.base import IncomingSms
from simhive.agent.modem.pdu import Deliver
from simhive.agent.sha256 import sha256

Storage = tuple[str, int]  # (memory, index) on the modem, e.g. ("SM", 3)


@dataclass(frozen=True)
class Message:
    sender: str
    text: str
    sc_timestamp: datetime | None  # the earliest part's
    parts: int  # parts the sender announced (1 for a single SMS)
    received_parts: tuple[int, ...]  # part numbers that arrived, ascending
    incomplete: bool
    key: str
    storage: tuple[Storage, ...]  # every stored copy to delete once the message is safe
    duplicate: bool = False  # a repeat of a message released before

    @property
    def missing_parts(self) -> tuple[int, ...]:
        got = set(self.received_parts)
        return tuple(n for n in range(1, self.parts + 1) if n not in got)

    def to_incoming(self, slot: int, received_at: datetime) -> IncomingSms:
        return IncomingSms(
            slot=slot,
            sender=self.sender,
            text=self.text,
            sent_at=self.sc_timestamp,
            received_at=received_at,
            parts=self.parts,
            incomplete=self.incomplete,
            key=self.key,
            storage=list(self.storage),
        )


_GroupKey = tuple[str, str, int, int]  # scope, sender, reference, total


@dataclass
class _Group:
    first_seen: float
    parts: dict[int, Deliver] = field(default_factory=dict)
    storage: list[Storage] = field(default_factory=list)


def _utc(ts: datetime | None) -> str:
    return ts.astimezone(UTC).isoformat() if ts is not None else ""


def _join(texts: Iterable[str]) -> str:
    # A sender may split a UTF-16 surrogate pair across parts; the codec keeps the halves at the
    # part edges so that here they join into one character. Any leftover half becomes U+FFFD.
    joined = "".join(texts)
    return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _key(scope: str, sender: str, ref: int | None, total: int, parts: list[Deliver]) -> str:
    h = sha256()
    for item in (scope, sender, "" if ref is None else str(ref), str(total)):
        h.update(item.encode("utf-8", "surrogatepass") + b"\x00")
    for p in parts:
        seq = p.concat.seq if p.concat is not None else 1
        h.update(f"{seq}\x00{_utc(p.sc_timestamp)}\x00".encode())
        h.update(p.text.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()[:32]


class Reassembler:
    def __init__(
        self,
        *,
        timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 1000,
    ) -> None:
        if timeout <= 0 or max_pending < 1:
            raise ValueError("timeout must be positive and max_pending at least 1")
        self.timeout = timeout
        self.max_pending = max_pending
        self._clock = clock
        self._groups: dict[_GroupKey, _Group] = {}
        self._overflow: list[Message] = []  # pushed out by max_pending, handed out by expire()
        # Released multipart messages, remembered for `timeout` to recognise late repeats.
        self._released: dict[_GroupKey, tuple[float, Message, dict[int, str]]] = {}

    @property
    def pending(self) -> int:
        return len(self._groups)

    def add(
        self, sms: Deliver, *, storage: Iterable[Storage] = (), scope: str = ""
    ) -> Message | None:
        """Feed one received SMS; returns a message when one is complete, else None."""
        stored = tuple(storage)
        concat = sms.concat
        if concat is None or concat.total == 1:
            return Message(
                sender=sms.sender,
                text=_join([sms.text]),
                sc_timestamp=sms.sc_timestamp,
                parts=1,
                received_parts=(1,),
                incomplete=False,
                key=_key(scope, sms.sender, None, 1, [sms]),
                storage=stored,
            )
        now = self._clock()
        gkey: _GroupKey = (scope, sms.sender, concat.reference, concat.total)
        repeat = self._repeat_of_released(gkey, sms, now)
        if repeat is not None:
            return dataclasses.replace(repeat, storage=stored, duplicate=True)
        group = self._groups.get(gkey)
        if group is None:
            self._make_room()
            group = self._groups[gkey] = _Group(first_seen=now)
        group.parts.setdefault(concat.seq, sms)  # a repeated part keeps the first copy
        group.storage.extend(stored)
        if len(group.parts) < concat.total:
            return None
        del self._groups[gkey]
        return self._release(gkey, group, now, incomplete=False)

    def expire(self) -> list[Message]:
        """Release every group whose time is up, flagged incomplete; call it periodically.

        Also returns groups given up early because more than `max_pending` were open."""
        now = self._clock()
        released, self._overflow = self._overflow, []
        for gkey, (until, _, _) in list(self._released.items()):
            if until <= now:
                del self._released[gkey]
        due = [k for k, g in self._groups.items() if g.first_seen + self.timeout <= now]
        released += [self._release(k, self._groups.pop(k), now, incomplete=True) for k in due]
        return released

    def next_deadline(self) -> float | None:
        """Clock value at which `expire` will next release something, or None."""
        if self._overflow:
            return self._clock()
        if not self._groups:
            return None
        return min(g.first_seen for g in self._groups.values()) + self.timeout

    def _make_room(self) -> None:
        # Bounded memory: parts with ever-new references (junk, or a flood) must not grow the
        # table without limit. The oldest group is given up early, flagged incomplete.
        while len(self._groups) >= self.max_pending:
            oldest = min(self._groups, key=lambda k: self._groups[k].first_seen)
            group = self._groups.pop(oldest)
            self._overflow.append(self._release(oldest, group, self._clock(), incomplete=True))

    def _release(self, gkey: _GroupKey, group: _Group, now: float, *, incomplete: bool) -> Message:
        scope, sender, ref, total = gkey
        ordered = [group.parts[n] for n in sorted(group.parts)]
        message = Message(
            sender=sender,
            text=_join(p.text for p in ordered),
            sc_timestamp=min(p.sc_timestamp for p in ordered),
            parts=total,
            received_parts=tuple(sorted(group.parts)),
            incomplete=incomplete,
            key=_key(scope, sender, ref, total, ordered),
            storage=tuple(group.storage),
        )
        texts = {n: p.text for n, p in group.parts.items()}
        self._released[gkey] = (now + self.timeout, message, texts)
        if len(self._released) > self.max_pending:  # bounded even if expire() is never called
            del self._released[min(self._released, key=lambda k: self._released[k][0])]
        return message

    def _repeat_of_released(self, gkey: _GroupKey, sms: Deliver, now: float) -> Message | None:
        entry = self._released.get(gkey)
        if entry is None or sms.concat is None:
            return None
        until, message, texts = entry
        if until <= now:
            del self._released[gkey]
            return None
        if texts.get(sms.concat.seq) == sms.text:
            return message
        return None  # same reference reused for a new message: a new group
