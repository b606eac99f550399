"""Every /getdata/* route with every encoding real clients use, asserting exact shapes and types."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from simhive.server.core.dates import now_us
from tests.server.conftest import ENCODINGS, PASSWORD, Api

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
HUMAN_RE = re.compile(r"^\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}$")
SMS_FIELDS = [
    "id",
    "sendto",
    "body",
    "customerid",
    "status",
    "statustitle",
    "deviceid",
    "urgent",
    "created",
    "senttime",
    "timetosend",
    "sim",
    "paketid",
    "pakettitle",
    "paketbody",
]


def assert_php_date(value: Any, zone: str = "UTC", php_type: int = 3) -> None:
    assert isinstance(value, dict)
    assert set(value) == {"date", "timezone_type", "timezone"}
    assert DATE_RE.match(value["date"]), value
    assert value["timezone_type"] == php_type
    assert value["timezone"] == zone


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_gettoken_issues_a_working_token(api: Api, encoding: str) -> None:
    data = await api.call("gettoken", {"email": api.email, "pass": PASSWORD}, encoding)
    assert list(data) == ["error", "message", "token"]
    assert data["error"] == 0 and data["message"] == "OK"
    assert re.fullmatch(r"[0-9a-f]{32}", data["token"])
    listed = await api.call("getalldevices", {"token": data["token"]}, "get")
    assert listed["error"] == 0
    # the earlier token stays valid: gettoken adds a token, it does not rotate
    assert (await api.ok("getalldevices", {}, "get"))["count"] == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_gettoken_wrong_login_exact_message(api: Api, encoding: str) -> None:
    for params in (
        {"email": api.email, "pass": "wrong"},
        {"email": "nobody@example.com", "pass": PASSWORD},
        {"email": api.email},
        {},
    ):
        assert await api.err("gettoken", params, encoding) == "Login or password incorrect"


async def test_gettoken_ignores_token_no_token(api: Api) -> None:
    # The Java SDK sends token=NO_TOKEN on gettoken.
    data = await api.call("gettoken", {"email": api.email, "pass": PASSWORD, "token": "NO_TOKEN"})
    assert data["error"] == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_addsms_shape_and_stored_fields(api: Api, encoding: str) -> None:
    data = await api.ok(
        "addsms",
        {
            "sendto": "+49 157 52982212",
            "body": "Test message from API",
            "device_id": api.device_id,
            "timetosend": "2021-08-01 12:00",
            "customerid": 19921,
            "urgent": 1,
        },
        encoding,
    )
    assert list(data) == ["error", "sms_id", "message"]
    assert data["message"] == "Sms has been saved successfully"
    assert isinstance(data["sms_id"], int)
    listed = await api.ok("getallsms", {"timezone": "+02:00"}, "get")
    item = listed["smss"][str(data["sms_id"])]
    assert list(item) == SMS_FIELDS
    assert item["sendto"] == "+4915752982212"
    assert item["body"] == "Test message from API"
    assert item["customerid"] == 19921
    assert item["urgent"] is True
    assert item["status"] == 1 and item["statustitle"] == "New"
    assert item["deviceid"] == api.device_id
    assert item["sim"] == 0
    # input is UTC; output in the requested zone (the vendor's own example: 12:00 -> 14:00 +02:00)
    assert item["timetosend"] == {
        "date": "2021-08-01 14:00:00.000000",
        "timezone_type": 1,
        "timezone": "+02:00",
    }
    assert_php_date(item["created"], "+02:00", 1)
    assert item["senttime"] is None
    assert item["paketid"] is None and item["pakettitle"] is None and item["paketbody"] is None


async def test_addsms_several_recipients_all_or_nothing(api: Api) -> None:
    data = await api.ok(
        "addsms",
        {
            "sendto": "+4915752982212,+4917642111111, 0157111",
            "body": "x",
            "device_id": api.device_id,
        },
    )
    assert data["sms_id"] == data["sms_ids"][0] and len(data["sms_ids"]) == 3
    listed = await api.ok("getallsms", {}, "get")
    assert [listed["smss"][str(i)]["sendto"] for i in data["sms_ids"]] == [
        "+4915752982212",
        "+4917642111111",
        "0157111",
    ]
    message = await api.err(
        "addsms",
        {
            "token": api.token,
            "sendto": "+4915752982212,notanumber",
            "body": "x",
            "device_id": api.device_id,
        },
    )
    assert message == "Invalid phone number: notanumber"
    assert (await api.ok("getallsms", {"onlycount": 1}, "get"))["count"] == 3


async def test_addsms_leniency(api: Api) -> None:
    # customerId camelCase alias; lowercase wins when both are present
    first = await api.send(customerId=7)
    both = await api.send(customerId=7, customerid=8)
    # urgent as true/false in any case (Java SDK), empty = not urgent
    urgent_true = await api.send(urgent="TRUE")
    urgent_false = await api.send(urgent="false")
    urgent_empty = await api.send(urgent="")
    # an unencoded "+" arrives as a space; "00" means "+"; unknown keys are ignored
    space = await api.send(sendto=" 4915752982212", template_id="3", foo="bar")
    double_zero = await api.send(sendto="0049-157-52982212")
    formatted = await api.send(sendto="+1- (928) -111-22-33")
    # an empty optional field is the same as an absent one
    empty_opt = await api.send(sim="", timetosend="", customerid="")
    items = (await api.ok("getallsms", {}, "get"))["smss"]
    assert items[str(first)]["customerid"] == 7
    assert items[str(both)]["customerid"] == 8
    assert items[str(urgent_true)]["urgent"] is True
    assert items[str(urgent_false)]["urgent"] is None
    assert items[str(urgent_empty)]["urgent"] is None
    assert items[str(space)]["sendto"] == "+4915752982212"
    assert items[str(double_zero)]["sendto"] == "+4915752982212"
    assert items[str(formatted)]["sendto"] == "+19281112233"
    assert items[str(empty_opt)]["sim"] == 0
    # no schedule: timetosend is the creation time (the vendor's example), never null
    assert items[str(empty_opt)]["timetosend"] == items[str(empty_opt)]["created"]
    assert items[str(empty_opt)]["customerid"] is None


async def test_addsms_unencoded_plus_in_raw_body(api: Api) -> None:
    # epythonlab/smsgateway24 builds the body by hand: "+" becomes a space, "&" cuts the text.
    body = (
        f"token={api.token}&sendto=+4915752982212&body=Tom & Jerry&device_id={api.device_id}"
    ).encode()
    response = await api.client.post(
        "/getdata/addsms", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    data = await response.json()
    assert data["error"] == 0
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(data["sms_id"])]
    assert item["sendto"] == "+4915752982212"
    assert item["body"] == "Tom "


async def test_addsms_sim_rules(api: Api) -> None:
    one = await api.send(sim=1)
    assert (await api.ok("getallsms", {"sim": 1}, "get"))["smss"][str(one)]["sim"] == 1
    for value in ("2", "3", "5", "-1", "x"):
        msg = await api.err(
            "addsms",
            {
                "token": api.token,
                "sendto": "+4915752982212",
                "body": "x",
                "device_id": api.device_id,
                "sim": value,
            },
        )
        assert msg == f"Unsupported sim {value}"


async def test_addsms_body_wins_over_query(api: Api) -> None:
    response = await api.client.post(
        "/getdata/addsms",
        params={"token": api.token, "body": "from query", "device_id": "999"},
        data={"sendto": "+4915752982212", "body": "from body", "device_id": str(api.device_id)},
    )
    data = await response.json()
    assert data["error"] == 0
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(data["sms_id"])]
    assert item["body"] == "from body"


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (b"caf\xe9+ok", "caf\ufffd ok"),  # an invalid UTF-8 byte is replaced
        (b"caf%E9+ok", "caf%E9 ok"),  # an escape that is not UTF-8 is kept as written
    ],
)
async def test_addsms_invalid_utf8(api: Api, body: bytes, stored: str) -> None:
    raw = (
        b"token="
        + api.token.encode()
        + b"&sendto=%2B4915752982212&body="
        + body
        + b"&device_id="
        + str(api.device_id).encode()
    )
    response = await api.client.post(
        "/getdata/addsms", data=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    data = await response.json()
    assert data["error"] == 0
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(data["sms_id"])]
    assert item["body"] == stored


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_smstosend_token_or_login(api: Api, encoding: str) -> None:
    base = {"sendto": "+4915752982212", "body": "x", "device_id": api.device_id}
    by_token = await api.call("smstosend", {"token": api.token, **base}, encoding)
    assert by_token["error"] == 0 and by_token["message"] == "Sms has been saved successfully"
    by_login = await api.call("smstosend", {"email": api.email, "pass": PASSWORD, **base}, encoding)
    assert list(by_login) == ["error", "sms_id", "message"] and by_login["error"] == 0
    # a stale token with a valid login still authenticates (a real client sends all three)
    mixed = await api.call(
        "smstosend", {"token": "0" * 32, "email": api.email, "pass": PASSWORD, **base}, encoding
    )
    assert mixed["error"] == 0
    bad = await api.call("smstosend", {"email": api.email, "pass": "nope", **base}, encoding)
    assert bad == {"error": 1, "message": "Login or password incorrect"}
    assert await api.err("smstosend", base, encoding) == "Token is invalid"


def _batch(api: Api, n: int = 2) -> dict[str, Any]:
    return {
        "token": api.token,
        "smsdata": [
            {
                "sendto": "015752982212" if i % 2 == 0 else "+4915752982212",
                "body": f"Test message {i}",
                "sim": 1,
                "timetosend": "2019-07-01 23:50:00",
                "device_id": api.device_id if i % 2 else str(api.device_id),
                "customerid": "122" if i % 2 else 122,
                "urgent": 1 if i % 2 else "0",
            }
            for i in range(n)
        ],
    }


@pytest.mark.parametrize("where", ["form", "multipart", "query", "raw_json", "json_field"])
async def test_addalotofsms_datajson_everywhere(api: Api, where: str) -> None:
    batch = _batch(api)
    if where == "form":
        data = await api.call("addalotofsms", {"datajson": json.dumps(batch)}, "urlencoded")
    elif where == "multipart":
        data = await api.call("addalotofsms", {"datajson": json.dumps(batch)}, "multipart")
    elif where == "query":
        data = await api.call("addalotofsms", {"datajson": json.dumps(batch)}, "query_post")
    elif where == "raw_json":
        data = await api.call("addalotofsms", batch, "json")
    else:
        data = await api.call("addalotofsms", {"datajson": batch}, "json")
    assert list(data) == ["error", "message", "sms_ids"]
    assert data["error"] == 0 and data["message"] == "Sms has been saved successfully"
    assert len(data["sms_ids"]) == 2 and all(isinstance(i, int) for i in data["sms_ids"])
    items = (await api.ok("getallsms", {"timezone": "+02:00"}, "get"))["smss"]
    first, second = (items[str(i)] for i in data["sms_ids"])
    assert first["sendto"] == "015752982212" and second["sendto"] == "+4915752982212"
    assert first["urgent"] is None and second["urgent"] is True
    assert first["customerid"] == 122 and second["customerid"] == 122
    assert first["sim"] == 1
    # the vendor's example: 2019-07-01 23:50:00 in, 2019-07-02 01:50:00 +02:00 out
    assert first["timetosend"]["date"] == "2019-07-02 01:50:00.000000"


async def test_addalotofsms_token_as_separate_field(api: Api) -> None:
    batch = _batch(api)
    del batch["token"]
    data = await api.call("addalotofsms", {"token": api.token, "datajson": json.dumps(batch)})
    assert data["error"] == 0


async def test_addalotofsms_rejects_whole_batch(api: Api) -> None:
    batch = _batch(api, 5)
    batch["smsdata"][3]["sendto"] = "abc"
    message = await api.err("addalotofsms", {"datajson": json.dumps(batch)})
    assert message == "smsdata[3]: Invalid phone number: abc"
    batch = _batch(api, 5)
    batch["smsdata"][4]["device_id"] = 99999
    assert await api.err("addalotofsms", {"datajson": json.dumps(batch)}) == (
        "smsdata[4]: Device not found"
    )
    batch = _batch(api, 5)
    batch["smsdata"][2]["timetosend"] = "2019-13-01"
    assert await api.err("addalotofsms", {"datajson": json.dumps(batch)}) == (
        "smsdata[2]: Invalid date in timetosend"
    )
    assert (await api.ok("getallsms", {"onlycount": 1}, "get"))["count"] == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_getallsms_filters(api: Api, encoding: str) -> None:
    other, _ = await api.gateway.create_device(
        await api.gateway.authenticate(api.token), "second modem"
    )
    a = await api.send(customerid=1)
    b = await api.send(device_id=other.id, sim=1, customerid=2, sendto="+4917642111111")
    c = await api.send(customerid=1, sendto="+4917642111111")

    async def ids(**params: Any) -> list[int]:
        data = await api.ok("getallsms", params, encoding)
        assert data["count"] == len(data["smss"])
        assert all(key == str(value["id"]) for key, value in data["smss"].items())
        return [int(k) for k in data["smss"]]

    assert await ids() == [a, b, c]
    assert await ids(orderbydesc=1) == [c, b, a]
    assert await ids(device_id=other.id) == [b]
    assert await ids(sim=1) == [b]
    assert await ids(sim=0) == [a, c]
    assert await ids(customerid=1) == [a, c]
    assert await ids(customerId=2) == [b]
    assert await ids(phone="+49 176 42111111") == [b, c]
    assert await ids(status=1) == [a, b, c]
    assert await ids(status=6) == []
    today = "2026-01-01"
    assert await ids(begindate="2000-01-01", enddate="2999-12-31 23:59:59") == [a, b, c]
    assert await ids(enddate="2000-01-01") == []
    assert await ids(begindate="2999-01-01") == []
    assert today  # a date-only enddate covers its whole day: see test_getallsms_enddate_day
    only = await api.ok("getallsms", {"onlycount": 1, "customerid": 1}, encoding)
    assert only == {"error": 0, "count": 2, "message": "Ok"}
    empty = await api.ok("getallsms", {"status": 7}, encoding)
    assert empty == {"error": 0, "smss": {}, "count": 0, "message": "Ok"}


async def test_getallsms_enddate_covers_the_whole_day(api: Api) -> None:
    sms_id = await api.send()
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(sms_id)]
    day = item["created"]["date"][:10]
    assert [int(k) for k in (await api.ok("getallsms", {"enddate": day}, "get"))["smss"]] == [
        sms_id
    ]
    assert (await api.ok("getallsms", {"begindate": day}, "get"))["count"] == 1


async def test_getallsms_timezones(api: Api) -> None:
    sms_id = await api.send(timetosend="2021-07-11 10:59:26")
    for tz, expect in (
        ("Australia/Sydney", ("2021-07-11 20:59:26.000000", 3, "Australia/Sydney")),
        ("UTC", ("2021-07-11 10:59:26.000000", 3, "UTC")),
        ("2", ("2021-07-11 12:59:26.000000", 1, "+02:00")),
        ("-5", ("2021-07-11 05:59:26.000000", 1, "-05:00")),
        ("+05:30", ("2021-07-11 16:29:26.000000", 1, "+05:30")),
    ):
        item = (await api.ok("getallsms", {"timezone": tz}, "get"))["smss"][str(sms_id)]
        got = item["timetosend"]
        assert (got["date"], got["timezone_type"], got["timezone"]) == expect
    # no timezone: the account's zone, UTC by default, as a zone identifier
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(sms_id)]
    assert item["timetosend"]["timezone_type"] == 3 and item["timetosend"]["timezone"] == "UTC"
    assert await api.err("getallsms", {"token": api.token, "timezone": "Mars/Base"}) == (
        "Invalid timezone: Mars/Base"
    )


async def test_getallsms_paging_extension(api: Api) -> None:
    ids = [await api.send() for _ in range(5)]
    page = await api.ok("getallsms", {"limit": 2, "offset": 1}, "get")
    assert [int(k) for k in page["smss"]] == ids[1:3]
    assert page["count"] == 5


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_tags_contacts_pakets(api: Api, encoding: str) -> None:
    tag = await api.ok("savetag", {"title": "VIP"}, encoding)
    assert list(tag) == ["error", "message", "tag_id"] and tag["message"] == "Ok"
    assert isinstance(tag["tag_id"], int)
    tag2 = (await api.ok("savetag", {"title": "Staff"}, encoding))["tag_id"]
    contact = await api.ok(
        "savecontact",
        {"phone": "+49 157 52982212", "tag_id": tag["tag_id"], "fullname": "Ann"},
        encoding,
    )
    assert list(contact) == ["error", "message", "contact_id"] and contact["message"] == "Ok"
    assert isinstance(contact["contact_id"], int)
    await api.ok("savecontact", {"phone": "+4917642111111", "tag_id": tag["tag_id"]}, encoding)
    # the same person in both tags gets one SMS
    await api.ok("savecontact", {"phone": "004915752982212", "tag_id": tag2}, encoding)
    paket = await api.ok(
        "savepaket",
        {
            "title": "Spring sale",
            "device_id": api.device_id,
            "body": "20% off",
            "tags": f"{tag['tag_id']},{tag2}",
        },
        encoding,
    )
    assert list(paket) == ["error", "message", "paket_id"] and paket["message"] == "Ok"
    items = list((await api.ok("getallsms", {}, "get"))["smss"].values())
    assert [i["sendto"] for i in items] == ["+4915752982212", "+4917642111111"]
    for item in items:
        assert item["paketid"] == paket["paket_id"]
        assert item["pakettitle"] == "Spring sale" and item["paketbody"] == "20% off"
        assert item["body"] == "20% off" and item["status"] == 1 and item["sim"] == 0


async def test_savepaket_errors(api: Api) -> None:
    tag = (await api.ok("savetag", {"title": "t"}))["tag_id"]
    base = {"token": api.token, "title": "p", "device_id": api.device_id, "body": "b"}
    assert await api.err("savepaket", {**base, "tags": f"{tag},99999"}) == "Tag not found"
    assert await api.err("savepaket", {**base, "tags": "1,x"}) == "Invalid tags: x"
    assert await api.err("savepaket", {**base}) == "Parameter tags is required"
    assert await api.err("savepaket", {**base, "tags": str(tag), "device_id": 777}) == (
        "Device not found"
    )
    assert (
        await api.err(
            "savecontact", {"token": api.token, "phone": "+4915752982212", "tag_id": 4242}
        )
        == "Tag not found"
    )
    assert await api.err("savetag", {"token": api.token}) == "Parameter title is required"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_getalldevices_shape(api: Api, encoding: str) -> None:
    data = await api.ok("getalldevices", {}, encoding)
    assert list(data)[:4] == ["error", "message", "count", "device"]
    assert data["message"] == "OK" and data["count"] == 1
    device = data["device"][str(api.device_id)]
    assert list(device) == [
        "id", "title", "number", "imei", "created", "createdhumanformat", "lastseen",
        "lastseenhumanformat", "serialnumber", "siminfo", "appversion", "isappversionactual",
        "delaybetweeneachsms", "delaybetweenrequest", "subscription",
    ]  # fmt: skip
    assert device["id"] == api.device_id and device["title"] == "hall modem"
    assert device["number"] is None and device["imei"] == "null"
    assert_php_date(device["created"])
    assert_php_date(device["lastseen"])
    assert HUMAN_RE.match(device["createdhumanformat"])
    assert device["siminfo"] == []
    assert device["delaybetweenrequest"] == 10 and device["delaybetweeneachsms"] is None
    assert device["subscription"] is True and device["isappversionactual"] is False


async def test_getalldevices_siminfo_values_are_strings(api: Api) -> None:
    import sqlite3

    conn = sqlite3.connect(api.gateway.store.path)  # type: ignore[attr-defined]
    conn.execute(
        "INSERT INTO sims(device_id, slot, iccid, number, country_iso, carrier, roaming)"
        " VALUES (?, 0, '8949226172233934327', '+4915752982212', 'DE', 'Drillisch (o2)', 1)",
        (api.device_id,),
    )
    conn.commit()
    conn.close()
    device = (await api.ok("getalldevices", {}, "get"))["device"][str(api.device_id)]
    assert device["siminfo"] == [
        {
            "Slot": "0",
            "IccId": "8949226172233934327",
            "Number": "+4915752982212",
            "Roaming": "1",
            "CountryIso": "de",
            "CarrierName": "Drillisch (o2)",
        }
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_getsmsstatus_fresh_is_new(api: Api, encoding: str) -> None:
    sms_id = await api.send()
    data = await api.ok("getsmsstatus", {"sms_id": sms_id}, encoding)
    assert data == {
        "error": 0,
        "sms_id": sms_id,
        "status": 1,
        "status_description": "New",
        "message": "Ok",
    }
    assert await api.err("getsmsstatus", {"token": api.token, "sms_id": 999999}) == "Sms not found"


async def test_status_descriptions(api: Api) -> None:
    import sqlite3

    expected = {
        2: "Taken from Server", 3: "Queued for sending", 5: "Income", 6: "Sent by Phone",
        7: "Delivered", 8: "Sms Not Delivered", 9: "Not SENT - Generic failure",
        10: "Not sent - No service", 11: "Not Sent - Null PDU", 12: "Not Sent - Radio off",
        100: "not sent - NOT ALLOWED", 101: "not sent - Not Allowed At all",
    }  # fmt: skip
    sms_id = await api.send()
    for code, text in expected.items():
        conn = sqlite3.connect(api.gateway.store.path)  # type: ignore[attr-defined]
        conn.execute("UPDATE messages SET status = ? WHERE id = ?", (code, sms_id))
        conn.commit()
        conn.close()
        data = await api.ok("getsmsstatus", {"sms_id": sms_id}, "get")
        assert (data["status"], data["status_description"]) == (code, text)
        item = (await api.ok("getallsms", {"status": code}, "get"))["smss"][str(sms_id)]
        assert item["statustitle"] == text


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_getdevicestatus_shape(api: Api, encoding: str) -> None:
    data = await api.ok("getdevicestatus", {"device_id": api.device_id}, encoding)
    assert list(data) == [
        "online", "error", "message", "device_id", "lastseen", "diffseconds", "title",
    ]  # fmt: skip
    assert data["online"] is False and data["message"] == "OK"
    assert data["device_id"] == api.device_id and data["title"] == "hall modem"
    assert_php_date(data["lastseen"])  # never null, even before the first poll
    assert isinstance(data["diffseconds"], int) and data["diffseconds"] >= 0


async def test_getdevicestatus_online_after_poll(api: Api) -> None:
    await api.gateway.store.touch_device(api.device_id, now_us())
    data = await api.ok("getdevicestatus", {"device_id": api.device_id, "timezone": "2"}, "get")
    assert data["online"] is True and data["diffseconds"] <= 5
    assert data["lastseen"]["timezone"] == "+02:00" and data["lastseen"]["timezone_type"] == 1


async def test_getdevicestatus_sees_a_poll_at_once_like_getalldevices(api: Api) -> None:
    # An addsms caches the device (2 s); a poll right after must still show in getdevicestatus.
    await api.send()
    before = await api.ok("getdevicestatus", {"device_id": api.device_id}, "get")
    assert before["online"] is False
    await api.gateway.store.touch_device(api.device_id, now_us())
    status = await api.ok("getdevicestatus", {"device_id": api.device_id}, "get")
    listed = (await api.ok("getalldevices", {}, "get"))["device"][str(api.device_id)]
    assert status["online"] is True
    assert status["lastseen"] == listed["lastseen"]


async def test_trailing_slash_and_unknown_method(api: Api) -> None:
    response = await api.client.get(f"/getdata/getalldevices/?token={api.token}")
    assert (await response.json())["error"] == 0
    for name in ("nosuch", "addsmstosenderid"):
        for verb in ("GET", "POST"):
            response = await api.client.request(verb, f"/getdata/{name}")
            assert response.status == 200
            assert await response.json() == {"error": 1, "message": "Unknown method"}


async def test_every_route_rejects_a_bad_token(api: Api) -> None:
    for method in (
        "addsms", "addalotofsms", "getallsms", "savetag", "savecontact", "savepaket",
        "getalldevices", "getsmsstatus", "getdevicestatus",
    ):  # fmt: skip
        for token in (None, "", "f" * 32, "' OR 1=1 --"):
            params = {} if token is None else {"token": token}
            assert await api.err(method, params, "get") == "Token is invalid", method
