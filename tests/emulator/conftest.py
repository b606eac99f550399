from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .harness import Rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.stop()
