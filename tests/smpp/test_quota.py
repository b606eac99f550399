"""SMPP submits count on the account's quotas like every send (server/core/quotas.py): past a
quota, submit_sm answers ESME_RTHROTTLED and nothing is stored."""

from __future__ import annotations

from simhive.server.core.dates import now_us
from simhive.server.core.models import MessageFilter
from simhive.server.core.quotas import period_keys
from simhive.server.smpp.pdu import Cmd, Status
from tests.smpp.conftest import Smpp

TO = "+4915752982212"


async def test_a_submit_past_the_account_quota_is_refused(smpp: Smpp) -> None:
    await smpp.store.set_account_quota(smpp.account.id, 2, None)
    client = await smpp.bound()
    statuses = []
    for _ in range(3):
        answer = await client.call(Cmd.SUBMIT_SM, None, destination_addr=TO, short_message=b"hi")
        statuses.append(answer.status)
    assert statuses == [0, 0, Status.RTHROTTLED]
    assert await smpp.gateway.count_messages(MessageFilter(account_id=smpp.account.id)) == 2
    assert await smpp.store.quota_used(smpp.account.id, 0, period_keys(now_us())) == [2, 2]
