"""One-time codes by SMS, as Fonnte confirms a device delete: the account's phone number is
verified by a code sent to it, and deleting a device or resetting its token then needs a code
sent to that number. The codes go out as ordinary SMS through the account's own gateway (pool
`all`, high priority), so they need a device that can send.

- A code is 6 digits, stored as a salted PBKDF2 digest, valid OTP_SECONDS.
- A new code for the same action is sent at most once per RESEND_SECONDS (the answer says how
  long to wait).
- Each try is counted before it is compared; MAX_TRIES wrong ones void the code and lock the
  action for LOCK_SECONDS ("try again in N s"), also for the right code.
- Without a verified number nothing is sent: only the admin CLI deletes then.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from simhive.server.core import numbers
from simhive.server.core.dates import US
from simhive.server.core.errors import Forbidden, GatewayError, InvalidInput, LimitReached
from simhive.server.core.keys import Caller
from simhive.server.core.ratelimit import wait_text
from simhive.server.core.sending import Sender, SendRequest
from simhive.server.store.base import Store

OTP_SECONDS = 5 * 60
RESEND_SECONDS = 10 * 60
MAX_TRIES = 5
LOCK_SECONDS = 10 * 60
PBKDF2_ROUNDS = 50_000  # ~20 ms a check: a stolen digest of 6 digits is not read in a blink
VERIFY_PHONE, DELETE_DEVICE, RESET_TOKEN = "verify_phone", "delete_device", "reset_token"
ACTIONS = (VERIFY_PHONE, DELETE_DEVICE, RESET_TOKEN)
WHAT = {VERIFY_PHONE: "verify this number", DELETE_DEVICE: "delete device {target}",
        RESET_TOKEN: "reset the token of device {target}"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sent:
    to: str  # masked
    expires: int
    next_code_at: int
    sms_id: int | None


def digest(code: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    value = hashlib.pbkdf2_hmac("sha256", code.encode(), salt, PBKDF2_ROUNDS)
    return f"{salt.hex()}${value.hex()}"


def matches(code: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(digest(code, bytes.fromhex(salt)), stored)


def mask(number: str) -> str:
    return number[:3] + "*" * max(len(number) - 6, 0) + number[-3:]


class Otp:
    def __init__(self, store: Store, sender: Sender, clock: Callable[[], int]) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock

    async def send(self, caller: Caller, action: str, target: int, number: str) -> Sent:
        """Make a code for (action, target) and send it to `number` by SMS."""
        code = f"{secrets.randbelow(10**6):06d}"
        now = self.clock()
        expires = now + OTP_SECONDS * US
        account = caller.account
        wait = await self.store.otp_issue(account.id, action, target, digest(code), now,
                                          expires, RESEND_SECONDS * US)  # fmt: skip
        if wait is not None:
            seconds = (wait - now) / US
            raise LimitReached(
                f"A code was sent recently; a new one can be asked for in {wait_text(seconds)}",
                details={"retry_after_seconds": int(seconds + 0.999)},
                retry_after=seconds,
            )
        what = WHAT[action].format(target=target)
        text = f"simhive code {code} to {what}. Valid {OTP_SECONDS // 60} minutes. Never share it."
        try:
            result = await self.sender.send(
                Caller(account),  # the code is the account's own message, whichever key asked
                SendRequest(
                    to=[number], text=text, priority="high", validity_minutes=OTP_SECONDS // 60
                ),  # fmt: skip
            )
        except GatewayError:
            await self.store.otp_drop(account.id, action, target)
            raise
        sms_id = result.results[0].id if result.results else None
        return Sent(mask(number), expires, now + RESEND_SECONDS * US, sms_id)

    async def confirm(self, caller: Caller, action: str, target: int, code: str) -> None:
        """Return if `code` is the live code of (action, target), using it up; raise else."""
        account = caller.account
        now = self.clock()
        tried = await self.store.otp_try(account.id, action, target, now, MAX_TRIES)
        if tried.state == "missing":
            raise GatewayError("No code was asked for (or it was used): ask for one first",
                               code="otp_not_requested")  # fmt: skip
        if tried.state == "expired":
            raise GatewayError("The code has expired: ask for a new one", code="otp_invalid")
        if tried.state == "locked":
            seconds = max(((tried.locked_until or now) - now) / US, 1)
            raise LimitReached(f"Too many wrong codes; try again in {int(seconds + 0.999)} s",
                               code="otp_locked", retry_after=seconds,
                               details={"retry_after_seconds": int(seconds + 0.999)})  # fmt: skip
        assert tried.code_hash is not None
        if not (code.isascii() and code.isdigit() and matches(code, tried.code_hash)):
            lock = now + LOCK_SECONDS * US
            await self.store.otp_fail(account.id, action, target, tried.attempts, MAX_TRIES, lock)
            left = MAX_TRIES - tried.attempts
            if left <= 0:
                raise LimitReached(f"Wrong code; too many tries: try again in {LOCK_SECONDS} s",
                                   code="otp_locked", retry_after=LOCK_SECONDS,
                                   details={"retry_after_seconds": LOCK_SECONDS})  # fmt: skip
            raise GatewayError(f"Wrong code ({left} tries left)", code="otp_invalid",
                               details={"tries_left": left})  # fmt: skip
        if not await self.store.otp_use(account.id, action, target, tried.code_hash):
            raise GatewayError("The code was used already", code="otp_not_requested")

    async def verified_number(self, caller: Caller) -> str:
        phone = await self.store.account_phone(caller.account.id)
        if phone is None or phone.verified is None:
            raise Forbidden(
                "The account has no verified phone number: set one (PUT /api/v1/account/phone)"
                " and confirm its code, or delete with the admin CLI (simhive-server device"
                " delete)",
                code="phone_not_verified",
            )
        return phone.number


def phone_number(raw: str) -> str:
    try:
        number = numbers.normalise(raw)
    except GatewayError as exc:
        raise InvalidInput(exc.message, code="invalid_numbers",
                           details={"field": "number"}) from None  # fmt: skip
    if not number.startswith("+"):
        raise InvalidInput("The account's number must be international (+ and country code)",
                           code="invalid_numbers", details={"field": "number"})  # fmt: skip
    return number
