"""Plain records passed between the core and the store. Times are UTC microseconds (dates.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    email: str
    password_hash: str
    timezone: str
    created: int


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    account_id: int
    title: str
    token_hash: str
    created: int
    lastseen: int | None = None
    imei: str | None = None
    serialnumber: str | None = None
    appversion: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    number: str | None = None
    delaybetweenrequest: int = 10
    delaybetweeneachsms: int | None = None
    subscription: bool = True
    enabled: bool = True
    # Prefix rewrites applied to numbers sent through this device: (prefix, replacement).
    prefix_rules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Balance:
    """A SIM's last prepaid balance check by USSD, as its agent reported it (`balance` in the
    agent protocol's `sims` entries)."""

    text: str
    amount: float | None = None
    currency: str | None = None
    low: bool = False  # below the agent's balance_warn_below for that SIM
    checked_at: int | None = None  # microseconds since the epoch, UTC


@dataclass(frozen=True, slots=True)
class Sim:
    device_id: int
    slot: int
    present: bool = True
    active: bool = True
    iccid: str = ""
    imsi: str = ""
    number: str = ""
    operator: str = ""
    operator_code: str = ""
    carrier: str = ""
    country_iso: str = ""
    registered: bool = False
    roaming: bool = False
    signal_dbm: int | None = None
    updated: int = 0
    balance: Balance | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An outgoing message about to be stored (status 1): pinned to `device_id` + `sim`, or for
    a pool (`pool_id`, device_id None) bound to a SIM only when one asks for work."""

    account_id: int
    device_id: int | None
    sendto: str
    body: str
    sim: int = 0
    urgent: bool = False
    customerid: int | None = None
    timetosend: int | None = None
    pool_id: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    account_id: int
    device_id: int | None  # None: a pool message not bound to a SIM yet
    direction: str  # "out" or "in"
    sendto: str
    body: str
    sim: int
    status: int
    urgent: bool
    customerid: int | None
    created: int
    timetosend: int | None
    senttime: int | None
    delivered_time: int | None
    paket_id: int | None
    paket_title: str | None
    paket_body: str | None
    attempt: int = 0
    failure_code: str | None = None
    failure_reason: str | None = None
    pool: str | None = None  # the pool's name for a pool message


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """getallsms filters; None means "any". Dates filter on `created`, inclusive bounds."""

    account_id: int
    device_id: int | None = None
    sim: int | None = None
    status: int | None = None
    customerid: int | None = None
    sendto: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    descending: bool = False
    limit: int = 1000
    offset: int = 0


@dataclass(frozen=True, slots=True)
class NewPaket:
    account_id: int
    device_id: int
    title: str
    body: str
    sim: int
    tag_ids: tuple[int, ...]
    timetosend: int | None = None


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    account_id: int
    title: str


@dataclass(frozen=True, slots=True)
class PaketResult:
    paket_id: int
    message_ids: list[int] = field(default_factory=list)


# -- agent protocol (docs/agent-protocol.md) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What an agent's `hello` says about its modem box; None keeps the stored value."""

    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None
    serialnumber: str | None = None
    appversion: str | None = None


@dataclass(frozen=True, slots=True)
class ReportEvent:
    """One outcome event of a `report` batch."""

    event_id: str
    sms_id: int
    type: str  # sent | delivered | not_delivered | failed | unknown
    at: int
    status: int | None = None  # for `failed`: 9, 10, 11, 12, 100 or 101
    code: str | None = None
    reason: str | None = None
    # (part index, TP-MR reference); None when the modem gave no readable reference.
    parts: tuple[tuple[int, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One received SMS from an agent's `incoming` batch, already reassembled."""

    key: str
    sim: int
    sender: str
    body: str
    sent_at: int | None = None
    received_at: int | None = None
    parts: int = 1
    incomplete: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    expires: int
    messages: list[Message] = field(default_factory=list)
