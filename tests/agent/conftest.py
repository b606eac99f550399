from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simhive.agent.journal import Journal
from tests.agent.fakeserver import FakeAgentServer


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    await j.open()
    yield j
    await j.close()


@pytest.fixture
async def server() -> AsyncIterator[FakeAgentServer]:
    s = FakeAgentServer()
    await s.start()
    yield s
    await s.stop()
