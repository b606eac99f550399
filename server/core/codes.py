"""The native API's error codes, declared once: docs/api.md shows this table (a test compares
them) and the OpenAPI document lists the codes in its Error schema.

A code is stable: clients branch on it, so a code is never renamed or given another meaning;
new ones may be added. Where Onfon Media's HTTP API has a code of the same meaning it is named,
so an integration written against Onfon's numbers can map them one to one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status: int  # the HTTP status it is answered with
    onfon: str | None  # Onfon's code of the same meaning, if any
    meaning: str


CODES: tuple[ErrorCode, ...] = (
    ErrorCode("invalid_credential", 401, "007", "No API key, or one that is unknown or revoked."),
    ErrorCode(
        "device_token_refused",
        401,
        "007",
        "A device token (or a compat account token) was sent: /api/v1 takes API keys only.",
    ),
    ErrorCode("scope_denied", 403, "010", "The key lacks the scope the route needs."),
    ErrorCode(
        "get_send_disabled", 403, "010", "GET /api/v1/send with a key not created to allow it."
    ),
    ErrorCode("invalid_input", 400, "023", "A parameter is missing, unknown or malformed."),
    ErrorCode(
        "invalid_numbers",
        400,
        "013",
        "No recipient number could be read (or, with all_or_nothing, one could not).",
    ),  # fmt: skip
    ErrorCode(
        "invalid_schedule", 400, "019", "send_at is not a date, in the past or too far ahead."
    ),  # fmt: skip
    ErrorCode("too_many_numbers", 400, "042", "More recipients than one request may carry."),
    ErrorCode(
        "template_mismatch",
        400,
        "024",
        "A template placeholder has no value for a recipient.",
    ),
    ErrorCode("group_not_found", 404, "028", "No such contact group in this account."),
    ErrorCode("not_found", 404, None, "No such route, or no such record in this account."),
    ErrorCode("method_not_allowed", 405, None, "The route exists but not with this HTTP method."),
    ErrorCode("already_exists", 409, "029", "A record of that name exists already."),
    ErrorCode(
        "conflict",
        409,
        None,
        "The record's state does not allow it (e.g. a message that"
        " is already sent cannot be cancelled).",
    ),  # fmt: skip
    ErrorCode(
        "phone_not_verified",
        403,
        None,
        "The account has no verified phone number for one-time codes (only the admin CLI"
        " deletes then).",
    ),
    ErrorCode("otp_not_requested", 409, None, "No one-time code was asked for, or it was used."),
    ErrorCode("otp_invalid", 403, None, "The one-time code is wrong or has expired."),
    ErrorCode(
        "otp_locked", 429, None, "Too many wrong codes: the action is locked; see Retry-After."
    ),
    ErrorCode(
        "idempotency_conflict",
        409,
        None,
        "The Idempotency-Key was used for a different request, or its first request's outcome"
        " is unknown (a server restart interrupted it).",
    ),
    ErrorCode("body_too_large", 413, None, "The request body is over the size limit."),
    ErrorCode(
        "quota_exhausted",
        403,
        "021",
        "The send would pass a daily or monthly quota of the account or the key; nothing was"
        " stored.",
    ),
    ErrorCode("rate_limited", 429, None, "The key's request rate limit; see Retry-After."),
    ErrorCode("storage_unavailable", 503, None, "The database could not be written; retry."),
    ErrorCode("internal_error", 500, "006", "A fault of the server (a bug): never bad input."),
)

BY_CODE: dict[str, ErrorCode] = {c.code: c for c in CODES}


def status_of(code: str) -> int:
    found = BY_CODE.get(code)
    return found.status if found is not None else 400
