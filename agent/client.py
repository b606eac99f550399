"""HTTP client of the agent protocol (docs/agent-protocol.md): one call per route, typed errors.

Transport problems and 5xx answers raise `ServerAway` (retry with back-off); 4xx answers raise
`Refused` (never retried unchanged). The token travels only in the Authorization header and is
never part of an exception message or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from simhive._version import VERSION as AGENT_VERSION
from simhive.agent.config import AgentConfig
from simhive.agent.http import HttpClient, HttpError

MAX_BATCH = 500  # events, messages or ids per report / incoming / release call (protocol limits)
# One encoder for every call: json.dumps with options builds a new one each time (about 3 us
# of a 14 us encode of a small report).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ProtocolError(Exception):
    """Base class of the client's errors."""


class ServerAway(ProtocolError):
    """The server could not be reached, timed out, or answered 5xx: try again later."""


class Refused(ProtocolError):
    """The server answered 4xx: the request as sent will never succeed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code


class BadAnswer(ServerAway):
    """A 2xx answer that is not the JSON the protocol promises (a proxy page, a half answer)."""


class AgentClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        session: HttpClient,
        *,
        timeout: float = AgentConfig.request_timeout_seconds,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.session = session
        self.timeout = timeout

    async def call(
        self, route: str, payload: dict[str, Any], *, seconds: float | None = None
    ) -> dict[str, Any]:
        return await self._post(route, _encode(payload).encode(), seconds)

    async def _post(self, route: str, data: bytes, seconds: float | None) -> dict[str, Any]:
        url = f"{self.base_url}/agent/v1/{route}"
        try:
            resp = await self.session.request(
                "POST", url, body=data, headers=self._headers, seconds=seconds or self.timeout
            )
        except (HttpError, TimeoutError, OSError) as exc:
            raise ServerAway(f"{route}: {type(exc).__name__}: {exc}") from None
        body, status = resp.body, resp.status
        if status >= 500:
            raise ServerAway(f"{route}: HTTP {status}")
        try:
            answer = json.loads(body) if body else {}
        except (ValueError, UnicodeDecodeError):
            answer = None
        if status >= 400:
            err = answer.get("error") if isinstance(answer, dict) else None
            code = str(err.get("code", "")) if isinstance(err, dict) else ""
            msg = str(err.get("message", "")) if isinstance(err, dict) else ""
            raise Refused(status, code or "http_error", msg[:300] or f"{route} refused")
        if not isinstance(answer, dict):
            raise BadAnswer(f"{route}: answer is not a JSON object (HTTP {status})")
        return answer

    async def hello(self, device: dict[str, Any], sims: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.call(
            "hello", {"agent_version": AGENT_VERSION, "device": device, "sims": sims}
        )

    async def pull(
        self,
        max_messages: int,
        wait: float,
        holding: list[str] | None = None,
        sims: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"max": max_messages, "wait": wait}
        if holding is not None:
            payload["holding"] = holding
        if sims is not None:
            payload["sims"] = sims
        # The HTTP timeout must outlast the server's hold, or every idle poll would be an error.
        return await self.call("pull", payload, seconds=wait + self.timeout)

    async def commit(
        self, lease_id: str, ids: list[int], events: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """`commit`; with `events` (report events already encoded, as the journal keeps them)
        the report rides along in the same request and the answer lists them in `accepted`."""
        if events is None:
            return await self.call("commit", {"lease_id": lease_id, "ids": ids})
        head = _encode({"lease_id": lease_id, "ids": ids})[:-1]
        return await self._post("commit", f'{head},"events":[{",".join(events)}]}}'.encode(), None)

    async def release(self, ids: list[int], reason: str = "") -> dict[str, Any]:
        payload: dict[str, Any] = {"ids": ids}
        if reason:
            payload["reason"] = reason[:200]
        return await self.call("release", payload)

    async def report(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.call("report", {"events": events})

    async def report_raw(self, events: Sequence[str]) -> dict[str, Any]:
        """`report` of events already encoded as JSON objects (as the journal keeps them)."""
        return await self._post("report", f'{{"events":[{",".join(events)}]}}'.encode(), None)

    async def incoming(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.call("incoming", {"messages": messages})

    async def status(
        self, sims: list[dict[str, Any]] | None, events: list[dict[str, Any]]
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"events": events}
        if sims is not None:
            payload["sims"] = sims
        return await self.call("status", payload)
