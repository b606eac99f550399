"""Runs the campaign runner (server/core/campaign_runner.py) for the life of the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from simhive.server.core.campaign_runner import CampaignRunner
from simhive.server.core.native import Native

RUNNER: web.AppKey[CampaignRunner] = web.AppKey("campaign_runner", CampaignRunner)


def attach(app: web.Application, native: Native) -> None:
    """Register the runner; tests tune app[RUNNER] (interval, window) before the app starts."""
    runner = CampaignRunner(native.store, native.sender)
    app[RUNNER] = runner
    native.campaigns.wake = runner.wake

    async def running(app: web.Application) -> AsyncIterator[None]:
        # One server of a shared database runs it (docs/scaling.md): two runners would hand the
        # same window of recipients to the queue twice.
        task = asyncio.create_task(
            native.store.run_once_in_cluster("campaigns", app[RUNNER].run),
            name="simhive-campaigns",
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(running)
