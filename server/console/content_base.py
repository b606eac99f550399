"""What the content pages (templates, groups, campaigns, compose from a template) share: the
native API's use cases (server/core/native.py), called for the logged-in account, and ids from
the path.

The console holds the same Native the /api/v1 routes use (app[NATIVE]), so the campaign runner it
wakes is the running one. The caller has no key: the account's owner holds every scope.
"""

from __future__ import annotations

from collections.abc import Mapping

from simhive.server.console.base import Ctx
from simhive.server.console.native import caller as caller
from simhive.server.console.native import native as native
from simhive.server.core.errors import GatewayError, NotFound
from simhive.server.core.native_models import PLACEHOLDER

VAR_PREFIX = "var_"  # form fields var_<name> carry a template's {name}
# A refused recipient's code in words, where the core gives only the code (a campaign's).
CODE_WORDS = {
    "template_mismatch": "a placeholder of the template has no value (template mismatch)",
    "invalid_numbers": "not a phone number",
}


def path_id(ctx: Ctx, key: str, missing: str) -> int:
    """A record id from the path; anything but a plausible id is the same NotFound as another
    account's record, so ids cannot be probed."""
    text = ctx.request.match_info[key]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound(missing)
    return int(text)


def optional_id(text: str, missing: str) -> int | None:
    """A chosen record id from a select ('' = none)."""
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound(missing)
    return int(text)


def variables(ctx: Ctx) -> dict[str, str]:
    """The template variables filled in the form. A blank field is left out, so a template
    that needs it is refused as a template mismatch rather than sent with a hole."""
    out: dict[str, str] = {}
    for name, value in ctx.form.items():
        if name.startswith(VAR_PREFIX) and isinstance(value, str) and value.strip():
            key = name[len(VAR_PREFIX) :]
            if PLACEHOLDER.fullmatch("{" + key + "}"):
                out[key] = value
    return out


def variable_values(ctx: Ctx, names: list[str]) -> Mapping[str, str]:
    """What the form had for each of `names`, to show the fields again after a refusal."""
    return {n: ctx.field(VAR_PREFIX + n) for n in names}


def explain(exc: GatewayError, shown: int = 5) -> str:
    """The error, with the first refused recipients and why, when a send refused them all."""
    rejected = exc.details.get("rejected")
    if not isinstance(rejected, list) or not rejected:
        return exc.message
    named = "; ".join(
        f"{r.get('to')}: {r.get('error') or CODE_WORDS.get(str(r.get('code')), r.get('code'))}"
        for r in rejected[:shown]
    )
    return f"{exc.message} ({named})"
