"""What the SMPP door does with submit_sm, submit_multi, query_sm and cancel_sm: parse the PDU,
call the core (Gateway), render the answer. No socket here; the session hands in a decoded PDU
and sends back the response this returns.

Mapping (docs/smpp.md): destination_addr -> sendto (TON 1 adds the "+"), the text from
short_message or message_payload in its data_coding -> body, schedule_delivery_time ->
timetosend, service_type (else the key's SMPP pool, else `all`) -> pool. Each stored message
counts on the account's and the key's quotas like an /api/v1 send. A whole message's
message_id is simhive's sms_id; a part of a concatenated message gets "p<n>" and its message is
stored when the last part arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from simhive.server.core import numbers, quotas
from simhive.server.core.dates import now_us
from simhive.server.core.errors import GatewayError, InvalidInput, LimitReached, NotFound
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.native_models import Meter
from simhive.server.core.routing import POOL_NOT_FOUND
from simhive.server.smpp import times
from simhive.server.smpp.auth import Principal
from simhive.server.smpp.deliver import message_state
from simhive.server.smpp.pdu import MessageState, Pdu, PduError, Status, Tag, response
from simhive.server.smpp.text import Concat, message_text
from simhive.server.store.base import AfterInsert
from simhive.server.store.smpp_store import SmppStore
from simhive.server.store.sqlite_smpp import PartsTaken

DEFAULT_POOL = "all"
TON_INTERNATIONAL = 1
_FAILED_STATES = (MessageState.UNDELIVERABLE, MessageState.REJECTED)


def _refusal(exc: GatewayError, request: Outgoing, named_by_service_type: bool) -> PduError:
    """A core refusal as the command_status docs/smpp.md lists for it."""
    if isinstance(exc, NotFound) and exc.message == POOL_NOT_FOUND and named_by_service_type:
        return PduError(Status.RINVSERTYP, f"no pool {request.pool}")
    if isinstance(exc, InvalidInput) and exc.message.startswith("Invalid phone number"):
        return PduError(Status.RINVDSTADR, exc.message)
    if isinstance(exc, InvalidInput) and exc.message.startswith("Message body too long"):
        return PduError(Status.RINVMSGLEN, exc.message)
    if isinstance(exc, LimitReached) and exc.code == quotas.QUOTA_EXHAUSTED:
        return PduError(Status.RTHROTTLED, exc.message)
    return PduError(Status.RSUBMITFAIL, exc.message)


def _over_quota(meter: Meter) -> PduError:
    whose = "account" if meter.key_id == 0 else "API key"
    period = "daily" if meter.period.startswith("d:") else "monthly"
    return PduError(Status.RTHROTTLED, f"the {whose}'s {period} quota of {meter.limit} is used up")


def address(raw: str, ton: int, status: Status) -> str:
    """An SMPP address as simhive's number text (normalised later by the core)."""
    value = raw.strip()
    if not value or any(c in value for c in ",;"):
        raise PduError(status, f"invalid address {raw!r}")
    if ton == TON_INTERNATIONAL and not value.startswith("+"):
        value = "+" + value
    return value


class Requests:
    def __init__(
        self, gateway: Gateway, store: SmppStore, clock: Callable[[], int] = now_us
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.clock = clock

    async def submit_sm(self, who: Principal, pdu: Pdu) -> Pdu:
        dest = address(pdu.text("destination_addr"), pdu.num("dest_addr_ton"), Status.RINVDSTADR)
        message_id = await self._submit(who, pdu, dest)
        return response(pdu, message_id=message_id)

    async def submit_multi(self, who: Principal, pdu: Pdu) -> Pdu:
        """One message per SME address; distribution lists are not known here, so they and any
        refused address come back in unsuccess_sme. message_id is the first stored one's."""
        dests = pdu.fields.get("dest_address")
        assert isinstance(dests, list)
        if not dests:
            raise PduError(Status.RINVNUMDESTS, "no destinations")
        if pdu.tlv(Tag.SAR_MSG_REF_NUM) is not None or pdu.num("esm_class") & 0x40:
            raise PduError(Status.RSUBMITFAIL, "concatenated parts go by submit_sm")
        ids: list[str] = []
        failed: list[tuple[int, int, int, str]] = []
        for flag, ton, npi, addr in dests:
            try:
                if flag != 1:
                    raise PduError(Status.RINVDSTADR, "distribution lists are not supported")
                ids.append(await self._submit(who, pdu, address(addr, ton, Status.RINVDSTADR)))
            except PduError as exc:
                failed.append((int(exc.status), ton, npi, addr))
        if not ids:
            return response(pdu, failed[0][0])
        return response(pdu, message_id=ids[0], unsuccess_sme=failed)

    async def _submit(self, who: Principal, pdu: Pdu, dest: str) -> str:
        registered = pdu.num("registered_delivery")
        if registered & 3 == 3:
            raise PduError(Status.RINVREGDLVFLG, "registered_delivery 3 is reserved")
        sar = (
            pdu.tlv_int(Tag.SAR_MSG_REF_NUM),
            pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS),
            pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM),
        )
        text = message_text(
            pdu.octets("short_message"),
            pdu.tlv(Tag.MESSAGE_PAYLOAD),
            pdu.num("esm_class"),
            pdu.num("data_coding"),
            sar,
        )
        if not text.text:
            raise PduError(Status.RINVMSGLEN, "empty message")
        now = self.clock()
        try:
            when = times.parse(pdu.text("schedule_delivery_time"), now)
        except times.TimeError as exc:
            raise PduError(Status.RINVSCHED, str(exc)) from None
        try:
            expiry = times.parse(pdu.text("validity_period"), now)
        except times.TimeError as exc:
            raise PduError(Status.RINVEXPIRY, str(exc)) from None
        if expiry is not None and expiry <= (when or now):
            raise PduError(Status.RINVEXPIRY, "validity_period already over")
        service_type = pdu.text("service_type")
        request = Outgoing(
            sendto=dest,
            body=text.text,
            device_id=None,
            timetosend=when,
            pool=service_type or who.pool or DEFAULT_POOL,
        )
        source = pdu.text("source_addr")
        if text.concat is not None:
            return await self._part(
                who, request, text.concat, registered, source, now, bool(service_type), expiry
            )
        # The receipt request is written in the message's own transaction: a crash cannot
        # leave a stored message that owes a receipt nobody will send.
        then = None
        if registered & 3 or expiry is not None:
            then = self.store.submit_row(who.account.id, registered, source, dest, now, expiry)
        return str(await self._store(who, request, bool(service_type), then))

    async def _part(
        self,
        who: Principal,
        request: Outgoing,
        concat: Concat,
        registered: int,
        source: str,
        now: int,
        named_by_service_type: bool,
        expiry: int | None,
    ) -> str:
        await self._check(who, request, named_by_service_type)
        await self._check_quota(who)
        key = f"{source}|{request.sendto}|{concat.ref}|{concat.total}|{request.pool}"
        part_id, parts = await self.store.add_part(
            who.account.id, key, concat.seq, concat.total, request.body, registered, source,
            request.sendto, now, expiry,
        )  # fmt: skip
        if parts is None:
            return part_id
        whole = Outgoing(
            sendto=request.sendto,
            body="".join(p.text for p in parts),
            device_id=None,
            timetosend=request.timetosend,
            pool=request.pool,
        )
        # The message and its parts' links in one transaction; until then the parts wait as
        # they are, so after a crash the ESME's resubmitted part completes the set again.
        link = self.store.link_parts(who.account.id, key, concat.total)
        try:
            await self._store(who, whole, named_by_service_type, link)
        except PartsTaken:  # a repeat of the last part: the message is stored already
            pass
        except PduError as exc:
            if exc.status != Status.RTHROTTLED:
                # The core refused the whole message: its parts are forgotten.
                await self.store.forget_parts(who.account.id, key)
                raise
            # Over a quota: only this part is forgotten, so that the ESME's retry of it
            # completes the set again once the quota allows.
            await self.store.drop_part(who.account.id, part_id)
            raise
        return part_id

    async def _store(
        self,
        who: Principal,
        request: Outgoing,
        named_by_service_type: bool,
        then: AfterInsert | None = None,
    ) -> int:
        """Store the message and count it on the account's and the key's quotas (as /api/v1
        sends are) in one transaction: over a quota it is ESME_RTHROTTLED and nothing stays."""
        try:
            (sms_id,) = await self.gateway.send(who.account, request, then=then, key=who.key)
        except GatewayError as exc:
            raise _refusal(exc, request, named_by_service_type) from None
        return sms_id

    async def _check_quota(self, who: Principal) -> None:
        """ESME_RTHROTTLED if a quota is used up already (a part's message is counted when its
        last part arrives; this refuses parts of a message that could not be stored)."""
        daily, monthly = await self.gateway.store.account_quota(who.account.id)
        meters = quotas.meters(who.account.id, who.key, self.clock())
        for meter in quotas.with_account_limits(meters, daily, monthly):
            if meter.limit is None:
                continue
            (used,) = await self.gateway.store.quota_used(
                meter.account_id, meter.key_id, [meter.period]
            )
            if used >= meter.limit:
                raise _over_quota(meter)

    async def _check(self, who: Principal, request: Outgoing, named_by_service_type: bool) -> None:
        """What the core would refuse about a part's message, checked when the part arrives
        (the message itself is stored with the last part)."""
        try:
            numbers.normalise(request.sendto)
            await self.gateway.routing.pool_for_send(who.account, request.pool or DEFAULT_POOL)
        except GatewayError as exc:
            raise _refusal(exc, request, named_by_service_type) from None

    async def _sms_of(self, who: Principal, message_id: str, fail: Status) -> int | None:
        """The sms_id behind a message_id (None: a part whose message is not complete yet)."""
        if message_id.isdigit() and len(message_id) < 19:
            return int(message_id)
        if message_id.startswith("p") and message_id[1:].isdigit():
            found = await self.store.submit(who.account.id, message_id)
            if found is None:
                raise PduError(fail, f"unknown message_id {message_id}")
            return found.sms_id
        raise PduError(Status.RINVMSGID, f"not a simhive message_id: {message_id!r}")

    async def query_sm(self, who: Principal, pdu: Pdu) -> Pdu:
        message_id = pdu.text("message_id")
        sms_id = await self._sms_of(who, message_id, Status.RQUERYFAIL)
        if sms_id is None:
            return response(pdu, message_id=message_id, message_state=MessageState.ENROUTE)
        try:
            message = await self.gateway.message(who.account, sms_id)
        except NotFound:  # unknown, another account's, cancelled or expired (both delete it)
            found = await self.store.submit(who.account.id, message_id)
            if found is not None and found.expired:
                return response(pdu, message_id=message_id, message_state=MessageState.EXPIRED)
            raise PduError(Status.RQUERYFAIL, f"unknown message_id {message_id}") from None
        state = message_state(message.status)
        final = state not in (MessageState.ENROUTE, MessageState.UNKNOWN)
        done = message.delivered_time or message.senttime or message.created
        return response(
            pdu,
            message_id=message_id,
            final_date=times.absolute(done) if final else "",
            message_state=state,
            error_code=min(message.status, 255) if state in _FAILED_STATES else 0,
        )

    async def cancel_sm(self, who: Principal, pdu: Pdu) -> Pdu:
        message_id = pdu.text("message_id")
        if not message_id:
            raise PduError(Status.RCANCELFAIL, "cancel_sm needs a message_id")
        sms_id = await self._sms_of(who, message_id, Status.RCANCELFAIL)
        if sms_id is None or not await self.store.cancel(who.account.id, sms_id):
            raise PduError(Status.RCANCELFAIL, f"{message_id} cannot be cancelled any more")
        return response(pdu)
