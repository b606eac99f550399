"""The shape of a device token, checked before it is ever sent.

`simhive-server device create` prints tokens of 32 lowercase hex characters, and the server
refuses anything else before looking it up. A token of another shape in the agent's config is
a copy-paste slip (cut short, a placeholder, quotes pasted along): `check-config` and `doctor`
say so instead of letting the agent collect 401s.
"""

from __future__ import annotations

TOKEN_LENGTH = 32
_HEX = frozenset("0123456789abcdef")


def token_problem(token: str) -> str | None:
    """None when `token` looks like a device token, else what is wrong with it."""
    if len(token) != TOKEN_LENGTH:
        return (
            f"the token has {len(token)} characters; a device token has {TOKEN_LENGTH}"
            " (lowercase hex)"
        )
    if not set(token) <= _HEX:
        return "the token is not lowercase hex, as device tokens are"
    return None
