"""One thread that owns one gammu.StateMachine and runs every call on it.

Gammu's calls block (Init takes about 4 s, a submit up to Gammu's own 100 s timeout) and a
StateMachine must never be used from two threads, so each modem gets a dedicated thread with a
job queue. The event loop awaits jobs through futures. While no job is waiting and pumping is
on, the thread calls `ReadDevice()` every `poll_interval` seconds: that is when Gammu parses
unsolicited lines (+CMTI, +CDS) and fires the incoming callback.

The callback runs on this thread, inside a Gammu call, and may only queue data: any `sm.*` call
from it raises RuntimeError("Can not call Gammu functions from within callback")
(python-gammu test/test_dummy.py). So it just hands (type, data) to the event loop.

The one call made from outside this thread is `Abort()`, which python-gammu provides for exactly
that (it takes no lock and only raises Gammu's abort flag): a call stuck waiting for a modem that
was unplugged returns ERR_ABORTED at once instead of after 20-40 s of Gammu's timeouts. The flag
stays raised for the life of that StateMachine (even Init fails afterwards, verified with python-
gammu 3.5.1), so the next connect job gets a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = tuple[Callable[[Any], Any], "asyncio.Future[Any]", bool]  # (fn, future, fresh)
IncomingCallback = Callable[[str, dict[str, Any]], None]


class WorkerClosed(RuntimeError):
    """The worker thread was stopped; no more calls are accepted."""


class DeviceGone(RuntimeError):
    """The device node vanished (unplugged); the call was not started."""


class GammuWorker:
    def __init__(
        self,
        name: str,
        gammu: Any,
        *,
        poll_interval: float = 0.2,
        device_present: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        # Checked before each call: a Gammu call started on a vanished device can block for
        # 20-40 s of Gammu's own timeouts instead of failing (measured against the emulator).
        self._present = device_present
        self._gammu = gammu
        self.poll_interval = poll_interval
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_incoming: IncomingCallback | None = None
        self._closed = False
        self._sm: Any = None
        self._aborted = False
        # Set and cleared from jobs (on this thread) and read by the loop below.
        self.pumping = False
        self.pump_errors = 0

    def start(self, on_incoming: IncomingCallback) -> None:
        """Start the thread; `on_incoming(type, data)` is later called on the event loop."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._on_incoming = on_incoming
        self._thread = threading.Thread(target=self._run, name=f"gammu {self.name}", daemon=True)
        self._thread.start()

    def attach_callback(self, sm: Any) -> None:
        """(Re-)register the incoming callback; on the worker thread, e.g. after Init."""
        sm.SetIncomingCallback(self._callback)

    async def call(
        self, fn: Callable[[Any], T], *, check_device: bool = True, fresh: bool = False
    ) -> T:
        """Run fn(state_machine) on the worker thread and return its result (or raise).

        With check_device, a vanished device fails the call with DeviceGone before Gammu
        touches it (Init is called without: it must find out by itself whether it is back).
        With fresh, an aborted StateMachine is replaced by a new one first (for Init)."""
        if self._closed or self._thread is None or self._loop is None:
            raise WorkerClosed(f"gammu worker {self.name} is not running")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((fn if not check_device else _checked(fn, self), fut, fresh))
        return await fut

    def abort(self) -> None:
        """Make the Gammu call in progress (if any) return ERR_ABORTED now; from any thread."""
        sm = self._sm
        if sm is not None:
            self._aborted = True
            self.pumping = False
            sm.Abort()

    def device_gone(self) -> bool:
        return self._present is not None and not self._present()

    async def close(self, wait: float = 130.0) -> None:
        """Stop after the job in progress (Gammu cannot interrupt a submit); then end the thread."""
        if self._thread is None or self._closed:
            self._closed = True
            return
        self._closed = True
        self._jobs.put(None)
        thread = self._thread
        await asyncio.to_thread(thread.join, wait)
        if thread.is_alive():
            log.warning("%s: gammu thread still busy after %.0f s; left behind", self.name, wait)

    # -- the thread ---------------------------------------------------------------------------

    def _new_state_machine(self) -> Any:
        old, self._sm = self._sm, None
        if old is not None:
            with contextlib.suppress(self._gammu.GSMError):
                old.Terminate()
        sm = self._gammu.StateMachine()
        sm.SetIncomingCallback(self._callback)
        self._aborted = False
        self._sm = sm
        return sm

    def _run(self) -> None:
        sm = self._new_state_machine()
        while True:
            try:
                job = self._jobs.get(timeout=self.poll_interval if self.pumping else None)
            except queue.Empty:
                self._pump(sm)
                continue
            if job is None:
                break
            fn, fut, fresh = job
            if fresh and self._aborted:
                sm = self._new_state_machine()
            started = time.monotonic()
            try:
                result = fn(sm)
            except BaseException as exc:  # handed to the awaiting coroutine, never lost
                self._post(_set_exception, fut, exc)
            else:
                self._post(_set_result, fut, result)
            took = time.monotonic() - started
            if took > 2.0:  # Gammu waits out its own timeouts; worth knowing when tuning
                log.debug("%s: %s took %.1f s", self.name, getattr(fn, "__name__", fn), took)
        self.pumping = False
        # Not connected, or the device is gone: nothing left to close then.
        with contextlib.suppress(self._gammu.GSMError):
            sm.Terminate()
        # Anything queued after the stop marker gets an answer instead of hanging forever.
        while True:
            try:
                left = self._jobs.get_nowait()
            except queue.Empty:
                break
            if left is not None:
                self._post(_set_exception, left[1], WorkerClosed(f"{self.name} stopped"))
        self._sm = None

    def _pump(self, sm: Any) -> None:
        if not self.pumping or self.device_gone():  # pumping may have been stopped by abort()
            return
        try:
            sm.ReadDevice()
        except self._gammu.GSMError as exc:
            # A vanished device shows up here or in the next command; the health check, not
            # the pump, decides about reconnecting, so only count and log it.
            self.pump_errors += 1
            if self.pump_errors in (1, 10) or self.pump_errors % 100 == 0:
                log.info("%s: ReadDevice failed (%d times): %s", self.name, self.pump_errors, exc)

    def _callback(self, _sm: Any, kind: str, data: Any) -> None:
        # Inside a Gammu call on this thread: queue only (see the module docstring).
        if self._on_incoming is not None:
            payload = dict(data) if isinstance(data, dict) else {"value": data}
            self._post(self._on_incoming, str(kind), payload)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # RuntimeError: the loop closed between the check and the call; nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)


def _checked(fn: Callable[[Any], T], worker: GammuWorker) -> Callable[[Any], T]:
    def run(sm: Any) -> T:
        if worker.device_gone():
            raise DeviceGone(f"{worker.name} disappeared")
        return fn(sm)

    run.__name__ = getattr(fn, "__name__", "job")
    return run


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
