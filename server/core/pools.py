"""SIM pools: which SIM a pool message leaves on, decided when a SIM asks for work.

A message targets either a pinned SIM (device + slot, the SMSGateway24 meaning) or a pool, a named
set of SIMs of one account. Every account has the pool `all` (every SIM it has) and every device
is the pool `device:<id>` (its own SIMs); users name more, and one SIM may be in several.

Late binding: a pool message is stored unbound and gets its SIM only when a ready SIM with pacing
room pulls (docs/routing.md). The rules here are pure; the store applies them inside the lease
transaction, so two SIMs asking at once can never both take one message or break a rotation.

Strategies:
- `full`: every eligible SIM is used `weight` times per cycle before any is used again; the cycle
  is stored, so it survives a restart. A cycle ends when every healthy member has had its turns:
  a SIM that goes down stops holding the cycle back.
- `partial`: any ready SIM with room takes the next messages, the one just used included; a SIM of
  weight w takes each message it could take with probability w / (the highest weight).
- `least-loaded`: the messages go to the SIMs with the most pacing room first (room x weight).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simhive.server.core.errors import InvalidInput

STRATEGIES = ("full", "partial", "least-loaded")
ACCOUNT_POOL = "all"
DEVICE_POOL_PREFIX = "device:"
MAX_WEIGHT = 100
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# A least-loaded message that no SIM with more room took within this time goes to any SIM
# that asks: the SIM with the most room may be busy elsewhere, and the message must not wait.
LEAST_LOADED_PATIENCE_US = 2_000_000


@dataclass(frozen=True, slots=True)
class Pool:
    id: int
    account_id: int
    name: str
    kind: str  # named | account | device
    device_id: int | None
    strategy: str
    sticky: bool
    cycle: int
    created: int


@dataclass(frozen=True, slots=True)
class PoolSim:
    """A member of a pool (named pools) or the rotation counter of one (every pool)."""

    device_id: int
    slot: int
    weight: int = 1
    used: int = 0


@dataclass(frozen=True, slots=True)
class SimOffer:
    """What an agent's pull says about one of its SIMs (docs/agent-protocol.md)."""

    slot: int
    ready: bool
    room: int = 0
    pool_room: int = 0
    reason: str = ""


def device_pool_name(device_id: int) -> str:
    return f"{DEVICE_POOL_PREFIX}{device_id}"


def check_name(name: str) -> str:
    """A name a user may give a pool: lower-case letters, digits, '-' and '_', up to 40."""
    name = name.strip()
    if name == ACCOUNT_POOL or name.startswith(DEVICE_POOL_PREFIX):
        raise InvalidInput(f"Pool name {name!r} is reserved")
    if not _NAME.match(name):
        raise InvalidInput(
            f"Invalid pool name {name[:40]!r}: use 1-40 of a-z, 0-9, '-' and '_'"
            " starting with a letter or digit"
        )
    return name


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InvalidInput(f"Unknown strategy {strategy[:40]!r}: one of {', '.join(STRATEGIES)}")
    return strategy


def check_weight(weight: int) -> int:
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidInput(f"Invalid weight {weight}: 1 to {MAX_WEIGHT}")
    return weight


# -- the rules the lease transaction applies ----------------------------------------------------


def full_turns(me: PoolSim, healthy: Sequence[PoolSim]) -> tuple[int, bool]:
    """(turns `me` has left in the cycle, whether a new cycle starts first).

    A new cycle starts when `me` has used its turns and so has every other healthy member: a
    SIM that is down does not hold the cycle back, and a lone SIM simply cycles on.
    """
    left = me.weight - me.used
    if left > 0:
        return left, False
    others_done = all(
        m.used >= m.weight for m in healthy if (m.device_id, m.slot) != (me.device_id, me.slot)
    )
    return (me.weight, True) if others_done else (0, False)


def least_loaded_share(me: tuple[int, int], rooms: dict[tuple[int, int], int], waiting: int) -> int:
    """How many of `waiting` messages the SIM `me` takes when they are handed out greedily to
    the healthy SIMs with the most room (room x weight) first; ties go to the lower id."""
    order = sorted(rooms.items(), key=lambda kv: (-kv[1], kv[0]))
    left = waiting
    for key, room in order:
        take = min(left, max(room, 0))
        if key == me:
            return take
        left -= take
    return 0


def partial_takes(weight: int, top_weight: int, rand: Callable[[], float]) -> bool:
    """Whether a SIM of `weight` takes one more message in a `partial` pool."""
    return weight >= top_weight or rand() * top_weight < weight
