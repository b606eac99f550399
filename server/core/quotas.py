"""Daily and monthly message quotas (docs/api.md, "Quotas and balance"), counted for every send,
whichever door it came through: the native API (sending.py), the SMSGateway24-compatible API,
the console and SMPP (Gateway.send).

A send is counted on the account's meters and, when it came with an API key, on the key's. The
store counts them in the transaction that stores the messages (NativeStore.insert_metered,
Store.insert_messages): concurrent sends, through any number of servers, cannot together pass a
quota, and a refused send stores nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from simhive.server.core.dates import US
from simhive.server.core.errors import LimitReached
from simhive.server.core.native_models import ApiKey, Meter, QuotaExceeded


def period_keys(now_us: int) -> tuple[str, str]:
    """The day and month periods quotas count in (UTC)."""
    day = datetime.fromtimestamp(now_us / US, UTC)
    return f"d:{day:%Y-%m-%d}", f"m:{day:%Y-%m}"


def meters(account_id: int, key: ApiKey | None, now: int) -> list[Meter]:
    """What a send at `now` is counted on: the account's day and month (their limits read by
    the storing transaction), and the key's when there is one."""
    day, month = period_keys(now)
    out = [
        Meter(account_id, 0, day, None, from_account=True),
        Meter(account_id, 0, month, None, from_account=True),
    ]
    if key is not None:
        out += [
            Meter(account_id, key.id, day, key.daily_quota),
            Meter(account_id, key.id, month, key.monthly_quota),
        ]
    return out


QUOTA_EXHAUSTED = "quota_exhausted"  # the error code of a send a quota refused


def with_account_limits(meters: list[Meter], daily: int | None, monthly: int | None) -> list[Meter]:
    """`meters` with the account's stored limits filled in (for a check before a send; the
    storing transaction reads them itself)."""
    return [
        replace(m, limit=daily if m.period.startswith("d:") else monthly) if m.from_account else m
        for m in meters
    ]


def refused(exc: QuotaExceeded, asked: int) -> LimitReached:
    """The error of a send a quota refused (code quota_exhausted; HTTP 403 in /api/v1)."""
    m = exc.meter
    whose = "account" if m.key_id == 0 else "API key"
    period = "daily" if m.period.startswith("d:") else "monthly"
    return LimitReached(
        f"The {whose}'s {period} quota of {m.limit} messages would be passed"
        f" ({exc.used} used, {asked} asked); nothing was stored",
        code=QUOTA_EXHAUSTED,
        details={
            "quota": f"{whose} {period}".replace("API ", ""),
            "limit": m.limit,
            "used": exc.used,
            "asked": asked,
        },
    )
