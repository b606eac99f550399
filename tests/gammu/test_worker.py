"""The worker thread that owns a StateMachine, with a stand-in for python-gammu's module."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from simhive.agent.modem.gammu_worker import DeviceGone, GammuWorker, WorkerClosed


class FakeGSMError(Exception):
    pass


class FakeStateMachine:
    made: list[FakeStateMachine] = []

    def __init__(self) -> None:
        self.callback: Any = None
        self.reads = 0
        self.aborted = False
        self.terminated = False
        FakeStateMachine.made.append(self)

    def SetIncomingCallback(self, cb: Any) -> None:  # python-gammu's method names
        self.callback = cb

    def ReadDevice(self) -> int:
        self.reads += 1
        if self.reads == 1 and self.callback is not None:
            self.callback(self, "SMS", {"Location": 3, "Folder": 0})  # as +CMTI does
        return 0

    def Abort(self) -> None:
        self.aborted = True

    def Terminate(self) -> None:
        self.terminated = True


class FakeGammu:
    GSMError = FakeGSMError
    StateMachine = FakeStateMachine


async def test_jobs_run_on_one_thread_off_the_loop_and_callbacks_reach_the_loop() -> None:
    FakeStateMachine.made.clear()
    seen: list[tuple[str, dict[str, Any], int]] = []
    got = asyncio.Event()

    def on_incoming(kind: str, data: dict[str, Any]) -> None:
        seen.append((kind, data, threading.get_ident()))
        got.set()

    worker = GammuWorker("fake", FakeGammu(), poll_interval=0.01)
    worker.start(on_incoming)
    try:
        threads = {await worker.call(lambda sm: threading.get_ident()) for _ in range(5)}
        assert len(threads) == 1 and threading.get_ident() not in threads
        # As after Init: a job turns pumping on; when idle, ReadDevice is pumped and the
        # callback fires inside it.
        await worker.call(lambda sm: setattr(worker, "pumping", True))
        await asyncio.wait_for(got.wait(), 10)
        assert seen[0][:2] == ("SMS", {"Location": 3, "Folder": 0})
        assert seen[0][2] == threading.get_ident()  # handed to the event loop's thread
        with pytest.raises(ZeroDivisionError):
            await worker.call(lambda sm: 1 / 0)  # errors reach the caller, the thread lives on
        assert await worker.call(lambda sm: "alive") == "alive"
    finally:
        await worker.close()
    assert FakeStateMachine.made[-1].terminated
    with pytest.raises(WorkerClosed):
        await worker.call(lambda sm: None)


async def test_vanished_device_and_abort() -> None:
    FakeStateMachine.made.clear()
    present = {"yes": True}
    worker = GammuWorker(
        "fake", FakeGammu(), poll_interval=0.01, device_present=lambda: present["yes"]
    )
    worker.start(lambda kind, data: None)
    try:
        first = await worker.call(lambda sm: sm)
        present["yes"] = False
        with pytest.raises(DeviceGone):
            await worker.call(lambda sm: sm)  # not started on a vanished device
        assert await worker.call(lambda sm: sm, check_device=False) is first  # Init still tries
        worker.abort()
        assert first.aborted
        assert await worker.call(lambda sm: sm, check_device=False) is first  # not fresh: same
        fresh = await worker.call(lambda sm: sm, check_device=False, fresh=True)
        assert fresh is not first and first.terminated  # an aborted machine is replaced
    finally:
        await worker.close()
