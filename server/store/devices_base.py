"""Storage of device administration through the native API (enrollment codes, renames);
SQLite: sqlite_devices.py; PostgreSQL: pg_devices.py."""

from __future__ import annotations

from abc import ABC, abstractmethod


class DeviceAdminStore(ABC):
    @abstractmethod
    async def create_enrollment(
        self, code_hash: str, account_id: int, device_id: int, sealed: str, expires: int, now: int
    ) -> None:
        """Store a code (and drop codes that expired or were used)."""

    @abstractmethod
    async def redeem_enrollment(self, code_hash: str, now: int) -> tuple[int, str] | None:
        """(device id, sealed token) if the code is unused and not expired; it is then used
        and its sealed token erased, in one statement, so a code works once."""

    @abstractmethod
    async def rename_device(self, device_id: int, title: str) -> None: ...
