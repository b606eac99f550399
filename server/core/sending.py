"""Bulk send for the native API (and any door that wants per-recipient answers).

One request carries one text to up to limits.MAX_API_RECIPIENTS numbers, a target (a pool, a
device's own pool, or a pinned SIM), an optional schedule, priority and validity. Each recipient
is judged alone: a number that cannot be read gets its own error and the others are stored
(`all_or_nothing` refuses the whole request instead). Quotas are checked in the transaction that
stores the messages (store.insert_metered, server/core/quotas.py): concurrent sends cannot pass a
quota together, and a refused send stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from simhive.server.core import limits, numbers, quotas
from simhive.server.core.dates import DAY_US, US
from simhive.server.core.encoding import describe
from simhive.server.core.errors import (
    Forbidden,
    GatewayError,
    InvalidInput,
    NotFound,
)
from simhive.server.core.gateway import Gateway
from simhive.server.core.groups import Groups
from simhive.server.core.keys import Caller
from simhive.server.core.models import NewMessage
from simhive.server.core.native_models import QuotaExceeded
from simhive.server.core.pools import ACCOUNT_POOL
from simhive.server.core.templates import render

PRIORITIES = ("normal", "high")
BAD_NUMBER = "invalid_numbers"
# A schedule this far in the past is a mistake (a wrong zone), not clock skew.
SCHEDULE_SKEW_US = 5 * 60 * US


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One text (or a template) to many numbers. With a template, each recipient's text is the
    template filled with `variables` and then that recipient's own (`per_recipient`, aligned
    with `to`)."""

    to: Sequence[str]
    text: str | None = None
    template_id: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    per_recipient: Sequence[Mapping[str, str]] | None = None
    group_id: int | None = None  # instead of `to`: every contact of the group
    pool: str | None = None
    device_id: int | None = None
    sim: int | None = None
    send_at: str | None = None  # RFC 3339; without an offset it is UTC
    priority: str = "normal"
    validity_minutes: int | None = None
    customer_id: int | None = None
    all_or_nothing: bool = False


@dataclass(slots=True)  # not frozen: 10,000 of them are made per send, and `id` set later
class RecipientResult:
    to: str  # as given
    number: str | None = None  # as stored
    id: int | None = None
    error_code: str | None = None
    error: str | None = None
    encoding: str = "gsm7"
    parts: int = 1


@dataclass(frozen=True, slots=True)
class SendResult:
    results: list[RecipientResult]
    encoding: str | None  # None: the recipients' texts differ (a template)
    parts: int | None
    parts_total: int  # of the accepted messages: what the send is billed
    accepted: int
    rejected: int
    send_at: int | None
    valid_until: int | None


def parse_schedule(text: str | None, now: int) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"Invalid send_at {text[:40]!r}: an RFC 3339 date-time, e.g. 2030-01-31T09:00:00Z",
            code="invalid_schedule",
            details={"field": "send_at"},
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        at = int(when.timestamp() * US)
    except (OverflowError, ValueError):
        raise InvalidInput("Invalid send_at", code="invalid_schedule") from None
    if at < now - SCHEDULE_SKEW_US:
        raise InvalidInput(
            "send_at is in the past", code="invalid_schedule", details={"field": "send_at"}
        )
    if at > now + limits.MAX_SCHEDULE_DAYS * DAY_US:
        raise InvalidInput(
            f"send_at is more than {limits.MAX_SCHEDULE_DAYS} days ahead",
            code="invalid_schedule",
            details={"field": "send_at"},
        )
    return at


class Sender:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.store = gw.store
        self.groups = Groups(gw.store, gw.clock)

    async def send(self, caller: Caller, req: SendRequest, *, by_get: bool = False) -> SendResult:
        """`by_get`: the request came as a GET (send by URL), which a key must allow."""
        caller.require("send")
        if by_get and caller.key is not None and not caller.key.allow_get_send:
            raise Forbidden(
                "This key may not send with GET; create one with allow_get_send (see"
                " docs/api.md for the risks) or use POST /api/v1/messages",
                code="get_send_disabled",
            )
        account = caller.account
        now = self.gw.clock()
        body = await self._body(caller, req)
        if req.group_id is not None:
            req = await self._group(caller, req)
        if not req.to:
            raise InvalidInput("No recipients", code="invalid_numbers", details={"field": "to"})
        if len(req.to) > limits.MAX_API_RECIPIENTS:
            raise InvalidInput(
                f"Too many recipients: {len(req.to)} (at most {limits.MAX_API_RECIPIENTS})",
                code="too_many_numbers",
                details={"field": "to", "limit": limits.MAX_API_RECIPIENTS},
            )
        if req.priority not in PRIORITIES:
            raise InvalidInput(f"priority: one of {', '.join(PRIORITIES)}")
        send_at = parse_schedule(req.send_at, now)
        valid_until = None
        if req.validity_minutes is not None:
            if not 1 <= req.validity_minutes <= limits.MAX_VALIDITY_MINUTES:
                raise InvalidInput(
                    f"validity_minutes: 1 to {limits.MAX_VALIDITY_MINUTES}",
                    details={"field": "validity_minutes"},
                )
            valid_until = (send_at or now) + req.validity_minutes * 60 * US
        pool = req.pool
        if pool is None and req.device_id is None:
            pool = ACCOUNT_POOL
        device, slot, pool_id = await self.gw.target(
            account, device_id=req.device_id, sim=req.sim, pool=pool
        )
        rules = device.prefix_rules if device is not None else ()
        device_id = None if pool_id is not None or device is None else device.id
        results: list[RecipientResult] = []
        messages: list[NewMessage] = []
        urgent = req.priority == "high"
        described: dict[str, tuple[str, int]] = {}
        for index, raw in enumerate(req.to):
            try:
                number = numbers.normalise(raw, rules)
            except GatewayError as exc:
                results.append(RecipientResult(raw, error_code=BAD_NUMBER, error=exc.message))
                continue
            try:
                text = body if req.template_id is None else self._fill(body, req, index)
            except GatewayError as exc:  # template_mismatch, or a filled text too long
                results.append(RecipientResult(raw, number, error_code=exc.code, error=exc.message))
                continue
            shape = described.get(text)
            if shape is None:
                shape = described[text] = describe(text)
            results.append(RecipientResult(raw, number, None, None, None, *shape))
            messages.append(
                NewMessage(
                    account.id,
                    device_id,
                    number,
                    text,
                    slot,
                    urgent,
                    req.customer_id,
                    send_at,
                    pool_id,
                )  # fmt: skip
            )
        rejected = [r for r in results if r.error is not None]
        if rejected and (req.all_or_nothing or not messages):
            raise InvalidInput(
                f"{len(rejected)} of {len(results)} recipient(s) refused; nothing was stored",
                code=rejected[0].error_code,
                details={
                    "rejected": [
                        {"to": r.to, "code": r.error_code, "error": r.error} for r in rejected[:100]
                    ]
                },
            )
        ids = await self._store(caller, messages, now, valid_until)
        id_iter = iter(ids)
        for r in results:
            if r.error is None:
                r.id = next(id_iter)
        stored = results
        one = next(iter(described.values())) if len(described) == 1 else (None, None)
        total = sum(r.parts for r in stored if r.error is None)
        return SendResult(stored, one[0], one[1], total, len(ids), len(rejected), send_at,
                          valid_until)  # fmt: skip

    async def _group(self, caller: Caller, req: SendRequest) -> SendRequest:
        """The request with the group's contacts as recipients (their names as `{name}`)."""
        if req.to or req.per_recipient is not None:
            raise InvalidInput("Give one of to, recipients or group_id", details={"field": "to"})
        assert req.group_id is not None
        contacts = await self.groups.recipients(caller, req.group_id)
        if len(contacts) > limits.MAX_API_RECIPIENTS:
            raise InvalidInput(
                f"The group has {len(contacts):,} contacts; one send takes at most"
                f" {limits.MAX_API_RECIPIENTS:,}",
                code="too_many_numbers",
            )
        return replace(
            req,
            to=[c.phone for c in contacts],
            per_recipient=[{"name": c.name} if c.name else {} for c in contacts],
        )

    async def _body(self, caller: Caller, req: SendRequest) -> str:
        """The text, or the named template's body: exactly one of them."""
        if (req.text is None) == (req.template_id is None):
            raise InvalidInput("Give either text or template_id", details={"field": "text"})
        if req.template_id is not None:
            found = await self.store.template_by_id(caller.account.id, req.template_id)
            if found is None:
                raise NotFound("Template not found", details={"field": "template_id"})
            return found.body
        assert req.text is not None
        if not req.text:
            raise InvalidInput("text is empty", details={"field": "text"})
        if len(req.text) > limits.MAX_BODY_CHARS:
            raise InvalidInput(
                f"text too long (at most {limits.MAX_BODY_CHARS} characters)",
                details={"field": "text"},
            )
        return req.text

    @staticmethod
    def _fill(body: str, req: SendRequest, index: int) -> str:
        values = req.variables
        if req.per_recipient is not None and req.per_recipient[index]:
            values = {**values, **req.per_recipient[index]}
        text = render(body, values)
        if not text or len(text) > limits.MAX_BODY_CHARS:
            raise InvalidInput(f"The filled template has {len(text)} characters (1 to"
                               f" {limits.MAX_BODY_CHARS})")  # fmt: skip
        return text

    async def _store(
        self, caller: Caller, messages: list[NewMessage], now: int, valid_until: int | None
    ) -> list[int]:
        meters = quotas.meters(caller.account.id, caller.key, now)
        try:
            ids = await self.store.insert_metered(messages, now, valid_until, meters)
        except QuotaExceeded as exc:
            raise quotas.refused(exc, len(messages)) from None
        finally:
            await self.gw.notify_stored(messages)
        return ids
