"""Operations on stored messages beyond sending: cancel one not yet taken, send a failed one again.

A message can be cancelled only while nobody has taken it (status 1, no lease): once an agent has
pulled it, it may already be on its way to the network, and a cancel there could only lie. A
cancelled message ends as status 9 (not sent) with failure code `cancelled`, so every door and
the status webhook report it as not sent, with the reason.
"""

from __future__ import annotations

from simhive.server.core.errors import Conflict, InvalidInput
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.models import Account, Message
from simhive.server.core.status import FAILURE_CODES, Status
from simhive.server.store.console_base import ConsoleStore

CANCELLED_REASON = "cancelled before it was sent"
RESENDABLE = frozenset({int(c) for c in FAILURE_CODES} | {int(Status.NOT_DELIVERED)})


async def cancel(gw: Gateway, reads: ConsoleStore, account: Account, sms_id: int) -> Message:
    message = await gw.message(account, sms_id)  # NotFound for another account's message
    if message.direction != "out" or message.status != Status.NEW:
        raise Conflict("Only a message that is still new (not taken by a device) can be cancelled")
    done = await reads.cancel_message(account.id, sms_id, Status.FAILED, CANCELLED_REASON,
                                      gw.clock())  # fmt: skip
    if not done:
        raise Conflict("The message was taken by a device meanwhile and can no longer be cancelled")
    return await gw.message(account, sms_id)


async def resend(gw: Gateway, account: Account, sms_id: int) -> int:
    """Store a failed message again as a new one, to the same pool or SIM; the new id."""
    m = await gw.message(account, sms_id)
    if m.direction != "out" or m.status not in RESENDABLE:
        raise InvalidInput("Only a message that failed or was not delivered can be sent again")
    if m.pool is not None:
        request = Outgoing(sendto=m.sendto, body=m.body, device_id=None, pool=m.pool)
    else:
        request = Outgoing(sendto=m.sendto, body=m.body, device_id=m.device_id, sim=m.sim)
    (new_id,) = await gw.send(account, request)
    return new_id
