"""Runs the account webhook sender and the device watcher (server/core/account_webhooks.py,
device_watch.py) for the life of the app; tests tune app[ACCOUNT_HOOKS] before it starts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from simhive.server.api.agent import AGENT
from simhive.server.background import poster
from simhive.server.core.account_webhooks import AccountWebhookSender
from simhive.server.core.device_watch import DeviceWatch
from simhive.server.core.native import Native
from simhive.server.core.webhooks import RetryPolicy


@dataclass
class AccountHookJobs:
    interval_seconds: float = 1.0
    watch_interval_seconds: float = 2.0
    timeout_seconds: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sender: AccountWebhookSender | None = None
    watch: DeviceWatch | None = None


ACCOUNT_HOOKS: web.AppKey[AccountHookJobs] = web.AppKey("account_hooks", AccountHookJobs)


def attach(app: web.Application, native: Native) -> None:
    app[ACCOUNT_HOOKS] = AccountHookJobs()

    async def running(app: web.Application) -> AsyncIterator[None]:
        jobs = app[ACCOUNT_HOOKS]
        timeout = aiohttp.ClientTimeout(total=jobs.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            post = poster(session)
            jobs.sender = AccountWebhookSender(native.store, post, policy=jobs.retry,
                                               interval_seconds=jobs.interval_seconds)  # fmt: skip
            jobs.watch = DeviceWatch(
                native.store,
                offline_seconds=app[AGENT].settings.agent_offline_seconds,
                interval_seconds=jobs.watch_interval_seconds,
                on_change=jobs.sender.wake,
                waiting=native.gw.notifier.waiting,
            )
            tasks = [
                # One server of a shared database runs each (docs/scaling.md): two senders
                # would post the same outbox row twice, two watchers announce a change twice.
                asyncio.create_task(
                    native.store.run_once_in_cluster("account webhooks", jobs.sender.run),
                    name="simhive-account-webhooks",
                ),
                asyncio.create_task(
                    native.store.run_once_in_cluster("device watch", jobs.watch.run),
                    name="simhive-device-watch",
                ),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app.cleanup_ctx.append(running)
