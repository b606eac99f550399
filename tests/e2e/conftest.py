"""Fixtures for the end-to-end suite: whole gateways (server + emulator + agent) as processes.

`gateway(...)` builds and starts a GatewayStack in the test's tmp_path; teardown stops every
process it started whatever the test did, and a failing test gets the tail of every log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.stack import GatewayStack

GatewayFactory = Callable[..., GatewayStack]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GatewayFactory]:  # fmt: skip
    stacks: list[GatewayStack] = []

    def make(**kwargs: Any) -> GatewayStack:
        root = tmp_path_factory.mktemp("gw")
        stack = GatewayStack(root, **kwargs)
        stacks.append(stack)
        return stack.start()

    try:
        yield make
    finally:
        for stack in stacks:
            if request.node.stash.get(_FAILED, False):
                print(f"\n==== logs of the stack in {stack.root}\n{stack.logs(6000)}")
            stack.close()
