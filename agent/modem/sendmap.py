"""How a failed AT+CMGS becomes a SendError (outcome for the dispatcher, compat status code).

The code tables live in agent/modem/errors.py; this module only decides what the AT layer's
exceptions mean for a submit. The timing matters as much as the code: a timeout before the
`> ` prompt means nothing reached the network (retry is safe), a timeout or link loss after the
PDU was written means it may have gone out (UNKNOWN: never resend silently, docs/reliability.md).
"""

from __future__ import annotations

from .atchannel import AtChannel, AtCommandError, AtTimeout, ChannelClosed
from .base import SendError, SendOutcome
from .errors import cme_error, cms_error, send_error

__all__ = ["send_error_from_at"]


def send_error_from_at(
    exc: AtCommandError | AtTimeout | ChannelClosed, *, parts_sent: int, channel: AtChannel
) -> SendError:
    if isinstance(exc, AtTimeout):
        if exc.stage == "prompt":
            return SendError(
                f"no prompt from the modem: {exc}", outcome=SendOutcome.RETRY, parts_sent=parts_sent
            )
        return SendError(
            f"no answer to the submit: {exc}", outcome=SendOutcome.UNKNOWN, parts_sent=parts_sent
        )
    if isinstance(exc, ChannelClosed):
        outcome = SendOutcome.UNKNOWN if channel.pdu_written else SendOutcome.RETRY
        return SendError(f"link lost: {exc}", outcome=outcome, parts_sent=parts_sent)
    if exc.cms is not None:
        return send_error(cms_error(exc.cms), parts_sent=parts_sent, context=exc.command)
    if exc.cme is not None:
        return send_error(cme_error(exc.cme), parts_sent=parts_sent, context=exc.command)
    # A bare ERROR (CMEE off, or a vendor final) says nothing about the cause; the dispatcher's
    # bounded retries turn a persistent one into a final failure.
    return SendError(
        f"{exc.command}: {exc.final.text} without a code",
        outcome=SendOutcome.RETRY,
        parts_sent=parts_sent,
    )
