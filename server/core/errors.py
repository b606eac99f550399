"""One exception hierarchy for the server's domain.

Every message is safe to show to an API client: the compat layer renders it as
`{"error":1,"message":...}` verbatim, so texts follow docs/compat-api.md, "Error messages". The
native API renders the same exceptions as `{"error": {"code", "message", "details"}}`, with the
stable code each one carries (server/core/codes.py); `details` holds machine-readable extras.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base class: a request the gateway refuses, with a client-facing message."""

    code = "invalid_input"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}


class AuthError(GatewayError):
    """Missing, unknown or revoked token, or a wrong login."""

    code = "invalid_credential"


class Forbidden(GatewayError):
    """Authenticated, but this credential may not do that (a scope it lacks)."""

    code = "scope_denied"


class NotFound(GatewayError):
    """A referenced object does not exist or belongs to another account."""

    code = "not_found"


class InvalidInput(GatewayError):
    """A parameter is missing or malformed."""

    code = "invalid_input"


class Conflict(GatewayError):
    """The request clashes with stored state (e.g. an email already registered)."""

    code = "conflict"


class AlreadyExists(Conflict):
    """A record with that name (or key) exists already."""

    code = "already_exists"


class LimitReached(GatewayError):
    """A rate limit or quota refuses the request now; `retry_after` seconds, when known."""

    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
