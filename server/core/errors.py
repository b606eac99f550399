"""One exception hierarchy for the server's domain.

Every message is safe to show to an API client: the compat layer renders it as
`{"error":1,"message":...}` verbatim, so texts follow docs/compat-api.md, "Error messages".
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class: a request the gateway refuses, with a client-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthError(GatewayError):
    """Missing, unknown or revoked token, or a wrong login."""


class NotFound(GatewayError):
    """A referenced object does not exist or belongs to another account."""


class InvalidInput(GatewayError):
    """A parameter is missing or malformed."""


class Conflict(GatewayError):
    """The request clashes with stored state (e.g. an email already registered)."""
