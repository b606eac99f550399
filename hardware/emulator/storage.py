"""Message memories ("SM", "ME", "SR") as AT+CPMS, +CMGL, +CMGR and +CMGD see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# <stat> values of 27.005 in PDU mode, and their text-mode names.
REC_UNREAD, REC_READ, STO_UNSENT, STO_SENT, ALL = 0, 1, 2, 3, 4
STAT_TEXT = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT", 4: "ALL"}
TEXT_STAT = {v: k for k, v in STAT_TEXT.items()}

DEFAULT_CAPACITY = {"SM": 30, "ME": 100, "SR": 20}


@dataclass
class StoredMessage:
    index: int
    stat: int
    pdu: bytes  # with the SCA field, as +CMGR prints it
    kind: str  # "deliver" | "report" | "submit"
    address: str  # sender (deliver), recipient (report, submit)
    text: str
    timestamp: datetime | None
    tpdu_length: int  # octets after the SCA: the <length> of +CMGR/+CMGL
    reference: int | None = None  # TP-MR of a report
    status: int | None = None  # TP-ST of a report

    def describe(self) -> dict[str, object]:
        return {
            "index": self.index,
            "stat": STAT_TEXT[self.stat],
            "kind": self.kind,
            "address": self.address,
            "text": self.text,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "reference": self.reference,
            "status": self.status,
            "pdu": self.pdu.hex().upper(),
        }


class MemoryFull(Exception):
    pass


class Memory:
    """One message memory. Indexes start at 1 and the lowest free one is reused, as on SIMs."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.forced_full = False  # the full_storage fault
        self.full_reported = False  # a memory-full URC was printed since the last free slot
        self.messages: dict[int, StoredMessage] = {}

    @property
    def used(self) -> int:
        return len(self.messages)

    @property
    def full(self) -> bool:
        return self.forced_full or self.used >= self.capacity

    def store(self, message: StoredMessage) -> int:
        if self.full:
            raise MemoryFull(self.name)
        index = next(i for i in range(1, self.capacity + 2) if i not in self.messages)
        message.index = index
        self.messages[index] = message
        return index

    def get(self, index: int) -> StoredMessage | None:
        return self.messages.get(index)

    def delete(self, index: int) -> bool:
        self.full_reported = False
        return self.messages.pop(index, None) is not None

    def delete_flag(self, flag: int) -> None:
        """AT+CMGD=<i>,<flag> with flag 1..4 (27.005: read; +sent; +unsent; all)."""
        keep = {
            1: {REC_UNREAD, STO_UNSENT, STO_SENT},
            2: {REC_UNREAD, STO_UNSENT},
            3: {REC_UNREAD},
            4: set(),
        }[flag]
        self.messages = {i: m for i, m in self.messages.items() if m.stat in keep}
        self.full_reported = False

    def listing(self, stat: int) -> list[StoredMessage]:
        return [m for _, m in sorted(self.messages.items()) if stat == ALL or m.stat == stat]

    def describe(self) -> dict[str, object]:
        return {
            "capacity": self.capacity,
            "used": self.used,
            "full": self.full,
            "messages": [m.describe() for _, m in sorted(self.messages.items())],
        }


class Storage:
    def __init__(self, capacity: dict[str, int] | None = None) -> None:
        caps = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.memories = {name: Memory(name, cap) for name, cap in caps.items()}

    def __getitem__(self, name: str) -> Memory:
        return self.memories[name]

    def set_full(self, full: bool) -> None:
        for mem in self.memories.values():
            mem.forced_full = full
            if not full:
                mem.full_reported = False

    def describe(self) -> dict[str, object]:
        return {name: mem.describe() for name, mem in self.memories.items()}
