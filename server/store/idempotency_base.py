"""Storage for the compat API's Idempotency-Key (docs/compat-api.md, "Retrying safely")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key already claimed: the request it was claimed for, and its answer once it has one."""

    fingerprint: str
    answer: str | None


class IdempotencyStore(ABC):
    @abstractmethod
    async def claim_key(
        self, account_id: int, key: str, fingerprint: str, now: int, expired_before: int
    ) -> KeyRecord | None:
        """Claim `key` for a request (None), or return the live record that holds it. Records
        created before `expired_before` are deleted first (they no longer hold their key)."""

    @abstractmethod
    async def answer_key(self, account_id: int, key: str, answer: str) -> None:
        """Record the answer of the request that claimed `key`."""

    @abstractmethod
    async def release_key(self, account_id: int, key: str) -> None:
        """Free a key whose request stored nothing (it failed before any write)."""
