"""Storage of the account's phone number and one-time codes (native API); SQLite: sqlite_otp.py,
PostgreSQL: pg_otp.py. The rules (validity, resend wait, lockout) are server/core/otp.py's; the
store makes each check-and-write one step, so concurrent requests cannot pass them together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AccountPhone:
    number: str
    verified: int | None
    updated: int


@dataclass(frozen=True, slots=True)
class OtpTry:
    """What claiming a try found: `code_hash` to compare when the try may go ahead, else why
    not (`state`: missing, expired, locked) and until when it is locked."""

    state: str  # ok | missing | expired | locked
    code_hash: str | None = None
    attempts: int = 0
    locked_until: int | None = None


def otp_verdict(row: Iterable[Any] | None, now: int, max_attempts: int) -> OtpTry:
    """otp_try's rules over the code's row (code_hash, expires, attempts, locked_until), the
    same on both engines: "ok" with the code and the try counted (the caller then writes that
    count in the same transaction), else why the code may not be tried."""
    if row is None:
        return OtpTry("missing")
    code_hash, expires, attempts, locked = row
    if locked is not None and int(locked) > now:
        return OtpTry("locked", locked_until=int(locked))
    if code_hash is None:
        return OtpTry("missing")
    if int(expires) < now:
        return OtpTry("expired")
    if int(attempts) >= max_attempts:
        return OtpTry("locked", locked_until=int(locked or now))
    return OtpTry("ok", str(code_hash), int(attempts) + 1)


class OtpStore(ABC):
    @abstractmethod
    async def account_phone(self, account_id: int) -> AccountPhone | None: ...

    @abstractmethod
    async def set_account_phone(self, account_id: int, number: str, now: int) -> None:
        """Set the number, not verified (a verified one stays so if it is the same number)."""

    @abstractmethod
    async def verify_account_phone(self, account_id: int, number: str, now: int) -> None: ...

    @abstractmethod
    async def otp_issue(
        self, account_id: int, action: str, target: int, code_hash: str, now: int, expires: int,
        resend_us: int,
    ) -> int | None:  # fmt: skip
        """Store a new code unless one was sent less than `resend_us` ago or the action is
        locked: then store nothing and return when a new code may be asked for."""

    @abstractmethod
    async def otp_drop(self, account_id: int, action: str, target: int) -> None:
        """Forget the code (its SMS could not be stored)."""

    @abstractmethod
    async def otp_try(
        self, account_id: int, action: str, target: int, now: int, max_attempts: int
    ) -> OtpTry:
        """Count one try against the code, if it may be tried (exists, not expired, not locked,
        tries left): the count is taken before the comparison, so concurrent guesses cannot
        exceed `max_attempts` together."""

    @abstractmethod
    async def otp_fail(
        self, account_id: int, action: str, target: int, attempts: int, max_attempts: int,
        lock_until: int,
    ) -> None:  # fmt: skip
        """A wrong code: at `max_attempts` the code is void and the action locked."""

    @abstractmethod
    async def otp_use(self, account_id: int, action: str, target: int, code_hash: str) -> bool:
        """Use the code up; False if it was used meanwhile (a code works once)."""
