"""Column lists and row -> record conversions shared by the SQLite store modules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from server.core.models import Account, Device, Message, Sim

ACCOUNT_COLS = "a.id, a.email, a.password_hash, a.timezone, a.created"
DEVICE_COLS = (
    "id, account_id, title, token_hash, created, lastseen, imei, serialnumber, appversion,"
    " manufacturer, model, firmware, number, delaybetweenrequest, delaybetweeneachsms,"
    " subscription, enabled, prefix_rules"
)
SIM_COLS = (
    "device_id, slot, present, active, iccid, imsi, number, operator, operator_code, carrier,"
    " country_iso, registered, roaming, signal_dbm, updated"
)
MESSAGE_COLS = (
    "m.id, m.account_id, m.device_id, m.direction, m.sendto, m.body, m.sim, m.status, m.urgent,"
    " m.customerid, m.created, m.timetosend, m.senttime, m.delivered_time, m.paket_id, p.title,"
    " p.body, m.attempt, m.failure_code, m.failure_reason"
)


def account_row(row: Sequence[Any]) -> Account:
    return Account(*row)


def device_row(row: Sequence[Any]) -> Device:
    rules = tuple((str(a), str(b)) for a, b in json.loads(row[17] or "[]"))
    return Device(
        id=row[0],
        account_id=row[1],
        title=row[2],
        token_hash=row[3],
        created=row[4],
        lastseen=row[5],
        imei=row[6],
        serialnumber=row[7],
        appversion=row[8],
        manufacturer=row[9],
        model=row[10],
        firmware=row[11],
        number=row[12],
        delaybetweenrequest=row[13],
        delaybetweeneachsms=row[14],
        subscription=bool(row[15]),
        enabled=bool(row[16]),
        prefix_rules=rules,
    )


def sim_row(row: Sequence[Any]) -> Sim:
    return Sim(
        device_id=row[0],
        slot=row[1],
        present=bool(row[2]),
        active=bool(row[3]),
        iccid=row[4],
        imsi=row[5],
        number=row[6],
        operator=row[7],
        operator_code=row[8],
        carrier=row[9],
        country_iso=row[10],
        registered=bool(row[11]),
        roaming=bool(row[12]),
        signal_dbm=row[13],
        updated=row[14],
    )


def message_row(row: Sequence[Any]) -> Message:
    return Message(
        id=row[0],
        account_id=row[1],
        device_id=row[2],
        direction=row[3],
        sendto=row[4],
        body=row[5],
        sim=row[6],
        status=row[7],
        urgent=bool(row[8]),
        customerid=row[9],
        created=row[10],
        timetosend=row[11],
        senttime=row[12],
        delivered_time=row[13],
        paket_id=row[14],
        paket_title=row[15],
        paket_body=row[16],
        attempt=row[17],
        failure_code=row[18],
        failure_reason=row[19],
    )
