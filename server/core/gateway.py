"""The gateway's use cases: what the HTTP layers call.

Input arrives already typed (ints, bools, microsecond times) but not yet validated against the
account's data; everything here checks ownership, normalises numbers and enforces limits, then asks
the store to persist. Messages are validated all-or-nothing before anything is stored.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simhive.server.core import limits, numbers, quotas, security
from simhive.server.core.dates import now_us, resolve_zone
from simhive.server.core.errors import (
    AlreadyExists,
    AuthError,
    GatewayError,
    InvalidInput,
    NotFound,
)
from simhive.server.core.idempotency import IdempotentRequests
from simhive.server.core.models import (
    Account,
    Device,
    Message,
    MessageFilter,
    NewMessage,
    NewPaket,
    PaketResult,
    Sim,
)
from simhive.server.core.native_models import ApiKey, QuotaExceeded
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.pools import device_pool_name
from simhive.server.core.ratelimit import Locked, LoginGuard, SharedLogins, wait_text
from simhive.server.core.routing import Routing
from simhive.server.core.status import Status
from simhive.server.store.base import AfterInsert, DuplicateEmail, Store

SUPPORTED_SIMS = (0, 1)
BAD_LOGIN = "Login or password incorrect"
BAD_TOKEN = "Token is invalid"
BODY_TOO_LONG = f"Message body too long (at most {limits.MAX_BODY_CHARS} characters)"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One addsms-style request: `sendto` may still hold several comma-separated numbers.

    The target is a pinned SIM (`device_id` + `sim`), any SIM of a device (`sim` None: the
    device's own pool) or a pool by name (`pool`, without `device_id`)."""

    sendto: str
    body: str
    device_id: int | None
    sim: int | None = 0
    timetosend: int | None = None
    customerid: int | None = None
    urgent: bool = False
    pool: str | None = None


class Gateway:
    def __init__(
        self,
        store: Store,
        notifier: WorkNotifier | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.notifier = notifier or WorkNotifier()
        self.clock = clock
        self.routing = Routing(store, clock)
        self._token_cache: dict[str, tuple[float, Account]] = {}
        self._device_cache: dict[int, tuple[float, Device]] = {}
        # Called with a device id whose token changed or that is gone (None: any device), so a
        # cache of device tokens in this process (the agent service's) drops it at once.
        self.device_token_listeners: list[Callable[[int | None], None]] = []
        self.logins = LoginGuard()
        # Several servers on one database: the hard locks are counted there too, and the
        # slow-downs only there (made at the first login: the store says whether it is shared).
        self.shared_logins: SharedLogins | None = None
        self._asked_store = False
        self.once = IdempotentRequests(store, clock)

    # -- accounts and tokens ---------------------------------------------------------------
    async def create_account(
        self, email: str, password: str, timezone: str = "UTC"
    ) -> tuple[Account, str]:
        email = email.strip()
        if "@" not in email or len(email) > limits.MAX_TITLE_CHARS:
            raise InvalidInput(f"Invalid email: {email}")
        if len(password) < 8:
            raise InvalidInput("Password must have at least 8 characters")
        resolve_zone(timezone)
        token = security.new_token()
        pw_hash = await asyncio.to_thread(security.hash_password, password)
        try:
            account = await self.store.create_account(
                email, pw_hash, security.hash_token(token), timezone, self.clock()
            )
        except DuplicateEmail:
            raise AlreadyExists(f"Account {email} exists already") from None
        return account, token

    async def update_account(
        self, account: Account, *, password: str | None = None, timezone: str | None = None
    ) -> Account:
        if password is not None and len(password) < 8:
            raise InvalidInput("Password must have at least 8 characters")
        if timezone is not None:
            resolve_zone(timezone)
        pw_hash = (
            await asyncio.to_thread(security.hash_password, password)
            if password is not None
            else None
        )
        await self.store.update_account(account.id, password_hash=pw_hash, timezone=timezone)
        self._token_cache.clear()  # cached accounts carry the old time zone
        updated = await self.store.account_by_id(account.id)
        assert updated is not None
        return updated

    async def login(self, email: str, password: str, client: str | None = None) -> Account:
        """Email + password, within the login limits (server/core/ratelimit.py)."""
        key = email.strip().lower()
        if not self._asked_store:
            self._asked_store = True
            if self.store.shares_limits():
                self.shared_logins = SharedLogins(self.store, self.clock)
                self.logins = LoginGuard(paced=False)
        shared: list[int] | None = None
        delay = 0.0
        try:
            attempt = self.logins.admit(key, client)
            delay = attempt.delay
            if self.shared_logins is not None:
                try:
                    shared, delay = await self.shared_logins.begin(key, client)
                except BaseException:
                    attempt.withdraw()
                    raise
        except Locked as exc:
            wait = wait_text(exc.retry_after)
            raise AuthError(f"Too many failed logins; try again in {wait}") from None
        ok = False
        try:  # done() in finally: a cancelled attempt (client gone) still counts as a failure
            if delay > 0:
                await asyncio.sleep(delay)
            account = await self.store.account_by_email(email.strip())
            if account is None:
                # Same cost as a real check, so response time does not reveal which emails exist.
                await asyncio.to_thread(security.verify_password, password, _dummy_hash())
            else:
                ok = await asyncio.to_thread(
                    security.verify_password, password, account.password_hash
                )
        finally:
            attempt.done(ok)
            if shared is not None and self.shared_logins is not None:
                # A failure is already counted (the row stays) and now counts towards the
                # slow-downs; a success clears the pair.
                await self.shared_logins.end(shared, key, client, ok)
        if not ok or account is None:
            raise AuthError(BAD_LOGIN)
        return account

    async def issue_token(self, account: Account, *, revoke_others: bool = False) -> str:
        token = security.new_token()
        await self.store.add_account_token(
            account.id,
            security.hash_token(token),
            self.clock(),
            keep=limits.MAX_ACCOUNT_TOKENS,
            revoke_others=revoke_others,
        )
        if revoke_others:
            self._token_cache.clear()
        return token

    async def authenticate(self, token: str | None) -> Account:
        if not token:
            raise AuthError(BAD_TOKEN)
        digest = security.hash_token(token)
        cached = self._token_cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        account = await self.store.account_by_token_hash(digest)
        if account is None:
            raise AuthError(BAD_TOKEN)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (now + limits.TOKEN_CACHE_SECONDS, account)
        return account

    async def account_by_email(self, email: str) -> Account:
        account = await self.store.account_by_email(email.strip())
        if account is None:
            raise NotFound(f"No account with email {email}")
        return account

    # -- devices ---------------------------------------------------------------------------
    async def create_device(self, account: Account, title: str) -> tuple[Device, str]:
        title = title.strip()
        if not title or len(title) > limits.MAX_TITLE_CHARS:
            raise InvalidInput("Invalid device title")
        token = security.new_token()
        device = await self.store.create_device(
            account.id, title, security.hash_token(token), self.clock()
        )
        return device, token

    async def reset_device_token(self, device_id: int) -> str:
        if await self.store.device_by_id(device_id) is None:
            raise NotFound("Device not found")
        token = security.new_token()
        await self.store.set_device_token(device_id, security.hash_token(token))
        self._forget_device(device_id)
        return token

    def _forget_device(self, device_id: int | None) -> None:
        if device_id is None:
            self._device_cache.clear()
        else:
            self._device_cache.pop(device_id, None)
        for listener in self.device_token_listeners:
            listener(device_id)

    async def delete_device(
        self, owner: Account, device_id: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete one of `owner`'s devices (a foreign device is not found); counts of what goes
        (Store.delete_device). Its token stops working at once, in a running server within the
        device cache's few seconds."""
        device = await self.device_of(owner, device_id, fresh=True)
        counts = await self.store.delete_device(device.id, self.clock(), dry_run=dry_run)
        if not dry_run:
            self._forget_device(device.id)
        return counts

    async def delete_account(self, account: Account, *, dry_run: bool = False) -> dict[str, int]:
        """Delete the account and everything of it; counts of what goes (Store.delete_account)."""
        if await self.store.account_by_id(account.id) is None:
            raise NotFound(f"No account with email {account.email}")
        counts = await self.store.delete_account(account.id, self.clock(), dry_run=dry_run)
        if not dry_run:
            self._token_cache.clear()
            self._forget_device(None)
        return counts

    async def device_of(self, account: Account, device_id: int, *, fresh: bool = False) -> Device:
        """The account's device, or NotFound: a foreign device is reported like a missing one.
        `fresh` skips the short cache, for answers about the device itself (its lastseen)."""
        device = await self._device(device_id, fresh=fresh)
        if device is None or device.account_id != account.id:
            raise NotFound("Device not found")
        return device

    async def _device(self, device_id: int, *, fresh: bool = False) -> Device | None:
        # Cached briefly like tokens: every addsms needs the device (owner, prefix rules), and a
        # store round trip per request costs more than the rest of the validation.
        now = time.monotonic()
        cached = self._device_cache.get(device_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        device = await self.store.device_by_id(device_id)
        if device is not None:
            if len(self._device_cache) > 10_000:
                self._device_cache.clear()
            self._device_cache[device_id] = (now + limits.TOKEN_CACHE_SECONDS, device)
        return device

    async def devices_with_sims(self, account: Account) -> list[tuple[Device, list[Sim]]]:
        devices = await self.store.list_devices(account.id)
        sims = await self.store.sims_of([d.id for d in devices])
        return [(d, sims.get(d.id, [])) for d in devices]

    def is_online(self, device: Device, now: int | None = None) -> bool:
        """Online if the agent polled within max(3 x delaybetweenrequest, 60) seconds."""
        if device.lastseen is None:
            return False
        now = self.clock() if now is None else now
        window = max(3 * device.delaybetweenrequest, 60) * 1_000_000
        return now - device.lastseen <= window

    # -- messages --------------------------------------------------------------------------
    async def send(
        self,
        account: Account,
        request: Outgoing,
        *,
        then: AfterInsert | None = None,
        key: ApiKey | None = None,
    ) -> list[int]:
        """Store one addsms request (one message per recipient); ids in recipient order.
        `then` is the store's follow-up in the same transaction (Store.insert_messages); a send
        made with an API `key` (SMPP) also counts on the key's quotas."""
        devices: dict[int, Device] = {}
        messages = await self._expand(account, request, devices)
        wake = await self.routing.wake_for(messages)
        return await self._store_messages(messages, wake, then, key)

    async def send_batch(self, account: Account, requests: Sequence[Outgoing]) -> list[int]:
        """Store an addalotofsms batch: every entry valid, or nothing stored."""
        if not requests:
            raise InvalidInput("smsdata is empty")
        if len(requests) > limits.MAX_BATCH:
            raise InvalidInput(
                f"Too many messages in one batch: {len(requests)} (at most {limits.MAX_BATCH})"
            )
        devices: dict[int, Device] = {}
        messages: list[NewMessage] = []
        for index, request in enumerate(requests):
            try:
                messages.extend(await self._expand(account, request, devices))
            except GatewayError as exc:
                raise type(exc)(f"smsdata[{index}]: {exc.message}") from None
        return await self._store_messages(messages, await self.routing.wake_for(messages))

    async def _target(
        self, account: Account, request: Outgoing, devices: dict[int, Device]
    ) -> tuple[Device | None, int, int | None]:
        """(the device whose prefix rules apply, the pinned slot, the pool id or None)."""
        name = request.pool
        if name is not None and request.device_id is not None:
            raise InvalidInput("Give either device_id or pool, not both")
        if name is None and request.device_id is None:
            raise InvalidInput("Parameter device_id is required")
        device = None
        if request.device_id is not None:
            device = devices.get(request.device_id)
            if device is None:
                device = await self.device_of(account, request.device_id)
                devices[request.device_id] = device
            if request.sim is None:
                name = device_pool_name(device.id)  # "any SIM of this device"
            elif request.sim not in SUPPORTED_SIMS:
                raise InvalidInput(f"Unsupported sim {request.sim}")
            else:
                return device, request.sim, None
        assert name is not None
        pool = await self.routing.pool_for_send(account, name)
        return device, 0, pool.id

    async def target(
        self, account: Account, *, device_id: int | None, sim: int | None, pool: str | None
    ) -> tuple[Device | None, int, int | None]:
        """Where a message goes, as every door names it: (the device whose prefix rules apply,
        the pinned slot, the pool id or None); see Outgoing for the three forms."""
        request = Outgoing(sendto="", body="", device_id=device_id, sim=sim, pool=pool)
        return await self._target(account, request, {})

    async def notify_stored(self, messages: Sequence[NewMessage]) -> None:
        """Wake the parked pulls that may take these newly stored messages."""
        wake = await self.routing.wake_for(messages)
        for device_id in {m.device_id for m in messages if m.device_id is not None} | wake:
            self.notifier.notify(device_id)

    async def _expand(
        self, account: Account, request: Outgoing, devices: dict[int, Device]
    ) -> list[NewMessage]:
        device, sim, pool_id = await self._target(account, request, devices)
        if not request.body:
            raise InvalidInput("Parameter body is required")
        if len(request.body) > limits.MAX_BODY_CHARS:
            raise InvalidInput(
                f"Message body too long (at most {limits.MAX_BODY_CHARS} characters)"
            )
        recipients = numbers.split_recipients(request.sendto)
        if not recipients:
            raise InvalidInput("Parameter sendto is required")
        if len(recipients) > limits.MAX_RECIPIENTS:
            raise InvalidInput(
                f"Too many recipients in sendto: {len(recipients)} (at most"
                f" {limits.MAX_RECIPIENTS}; use addalotofsms for more)"
            )
        rules = device.prefix_rules if device is not None else ()
        return [
            NewMessage(
                account_id=account.id,
                device_id=None if pool_id is not None or device is None else device.id,
                sendto=numbers.normalise(raw, rules),
                body=request.body,
                sim=sim,
                urgent=request.urgent,
                customerid=request.customerid,
                timetosend=request.timetosend,
                pool_id=pool_id,
            )
            for raw in recipients
        ]

    async def _store_messages(
        self,
        messages: list[NewMessage],
        wake: set[int],
        then: AfterInsert | None = None,
        key: ApiKey | None = None,
    ) -> list[int]:
        """Store one request's messages (all of one account), counted on the account's quotas
        (server/core/quotas.py) like every send, and the key's: over a quota, nothing is
        stored."""
        now = self.clock()
        meters = quotas.meters(messages[0].account_id, key, now) if messages else []
        try:
            return await self.store.insert_messages(messages, now, then, meters)
        except QuotaExceeded as exc:
            raise quotas.refused(exc, len(messages)) from None
        finally:
            # Also when the request is cancelled (client gone) or the insert failed: the writer
            # may have committed the rows anyway, and a parked pull must not wait out its poll
            # for them. A wake-up with nothing new costs one empty lease query.
            if len(messages) == 1 and not wake:  # one addsms, one recipient: the common case
                device_id = messages[0].device_id
                if device_id is not None:
                    self.notifier.notify(device_id)
            else:
                for device_id in {m.device_id for m in messages if m.device_id is not None} | wake:
                    self.notifier.notify(device_id)

    async def message(self, account: Account, sms_id: int) -> Message:
        found = await self.store.message_by_id(account.id, sms_id)
        if found is None:
            raise NotFound("Sms not found")
        return found

    async def waiting_reason(self, m: Message) -> str | None:
        """Why a pinned message not yet sent is waiting, when its SIM or agent is down."""
        if m.direction != "out" or m.device_id is None or m.pool is not None:
            return None
        if m.status not in (Status.NEW, Status.TAKEN, Status.QUEUED):
            return None
        device = await self._device(m.device_id, fresh=True)
        if device is not None and device.lastseen is not None and not self.is_online(device):
            return f"device {m.device_id} is offline (its agent was not seen lately)"
        state = await self.store.sim_readiness(m.device_id, m.sim)
        if state is not None and not state[0]:
            return f"SIM {m.sim + 1} of device {m.device_id} is not ready: {state[1]}"
        return None

    async def list_messages(self, flt: MessageFilter) -> list[Message]:
        return await self.store.list_messages(flt)

    async def count_messages(self, flt: MessageFilter) -> int:
        return await self.store.count_messages(flt)

    # -- tags, contacts, pakets ------------------------------------------------------------
    async def create_tag(self, account: Account, title: str) -> int:
        title = title.strip()
        if not title:
            raise InvalidInput("Parameter title is required")
        if len(title) > limits.MAX_TITLE_CHARS:
            raise InvalidInput(f"Title too long (at most {limits.MAX_TITLE_CHARS} characters)")
        return await self.store.create_tag(account.id, title, self.clock())

    async def create_contact(
        self, account: Account, tag_id: int, phone: str, fullname: str | None
    ) -> int:
        if not await self.store.existing_tags(account.id, [tag_id]):
            raise NotFound("Tag not found")
        if fullname is not None and len(fullname) > limits.MAX_TITLE_CHARS:
            raise InvalidInput(f"fullname too long (at most {limits.MAX_TITLE_CHARS} characters)")
        normalised = numbers.normalise(phone)
        return await self.store.create_contact(
            account.id, tag_id, normalised, fullname, self.clock()
        )

    async def create_paket(
        self,
        account: Account,
        *,
        device_id: int,
        title: str,
        body: str,
        tag_ids: Sequence[int],
        sim: int = 0,
        timetosend: int | None = None,
    ) -> PaketResult:
        device = await self.device_of(account, device_id)
        title = title.strip()
        if not title:
            raise InvalidInput("Parameter title is required")
        if len(title) > limits.MAX_TITLE_CHARS:
            raise InvalidInput(f"Title too long (at most {limits.MAX_TITLE_CHARS} characters)")
        if len(body) > limits.MAX_BODY_CHARS:
            raise InvalidInput(
                f"Message body too long (at most {limits.MAX_BODY_CHARS} characters)"
            )
        if sim not in SUPPORTED_SIMS:
            raise InvalidInput(f"Unsupported sim {sim}")
        unique = tuple(dict.fromkeys(tag_ids))
        if not unique:
            raise InvalidInput("Parameter tags is required")
        existing = await self.store.existing_tags(account.id, unique)
        if len(existing) != len(unique):
            raise NotFound("Tag not found")
        result = await self.store.create_paket(
            NewPaket(account.id, device.id, title, body, sim, unique, timetosend), self.clock()
        )
        if result.message_ids:
            self.notifier.notify(device.id)
        return result


@functools.cache
def _dummy_hash() -> str:
    """A valid hash of a random password, to spend the same time on unknown emails as on real
    ones; made on first use so that importing the module (every CLI call) stays cheap."""
    return security.hash_password(security.new_token())
