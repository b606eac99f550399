"""Malformed input gets error:1 and a clear message, never a 5xx; rejected input stores nothing."""

from __future__ import annotations

import asyncio
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simhive.server.core.gateway import Outgoing
from simhive.server.core.limits import MAX_REQUEST_BYTES
from tests.server.conftest import ENCODINGS, Api

SQL_META = ["'", '"', "'; DROP TABLE messages; --", "1 OR 1=1", "%", "_", "\\", "`", "/*", ";"]


async def count(api: Api) -> int:
    data = await api.ok("getallsms", {"onlycount": 1}, "get")
    n: int = data["count"]
    return n


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "query_post"])
async def test_broken_datajson(api: Api, encoding: str) -> None:
    for raw in ("{not json", "[1,2]", '"text"', "null", '{"token":"x"', "\x00\xff"):
        msg = await api.err("addalotofsms", {"token": api.token, "datajson": raw}, encoding)
        assert msg == "Invalid datajson", raw
    for payload in ({"smsdata": "nope"}, {"smsdata": {"a": 1}}, {"smsdata": None}):
        msg = await api.err(
            "addalotofsms", {"token": api.token, "datajson": json.dumps(payload)}, encoding
        )
        assert msg == "Invalid datajson", payload
    assert await count(api) == 0


async def test_broken_raw_json_bodies(api: Api) -> None:
    for body in (b"{", b"[]", b'{"token": ', b"\xff\xfe{}"):
        response = await api.client.post(
            "/getdata/addalotofsms", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 200
        data = await response.json()
        assert data["error"] == 1 and data["message"].startswith("Invalid JSON body"), data


async def test_empty_batch_and_bad_entries(api: Api) -> None:
    assert await api.err(
        "addalotofsms", {"datajson": json.dumps({"token": api.token, "smsdata": []})}
    ) == ("smsdata is empty")
    entries: list[Any] = [{"sendto": "+4915752982212", "body": "x", "device_id": api.device_id}]
    for bad, message in (
        ("string", "smsdata[1]: entry is not an object"),
        ({"body": "x", "device_id": api.device_id}, "smsdata[1]: Parameter sendto is required"),
        ({"sendto": "+4915752982212", "device_id": api.device_id},
         "smsdata[1]: Parameter body is required"),
        ({"sendto": "+4915752982212", "body": "x"}, "smsdata[1]: Parameter device_id is required"),
        ({"sendto": "+4915752982212", "body": "x", "device_id": "abc"},
         "smsdata[1]: Invalid device_id: abc"),
        ({"sendto": "+4915752982212", "body": "x", "device_id": api.device_id, "sim": 4},
         "smsdata[1]: Unsupported sim 4"),
        ({"sendto": "+4915752982212", "body": "x", "device_id": api.device_id, "urgent": "maybe"},
         "smsdata[1]: Invalid value for urgent: maybe"),
        ({"sendto": ["+4915752982212"], "body": "x", "device_id": api.device_id},
         "smsdata[1]: Invalid value for sendto"),
    ):  # fmt: skip
        payload = {"token": api.token, "smsdata": [*entries, bad]}
        assert await api.err("addalotofsms", {"datajson": json.dumps(payload)}) == message
    assert await count(api) == 0


async def test_batch_size_limit(api: Api) -> None:
    entry = {"sendto": "+4915752982212", "body": "x", "device_id": api.device_id}
    payload = {"token": api.token, "smsdata": [entry] * 1001}
    assert await api.err("addalotofsms", payload, "json") == (
        "Too many messages in one batch: 1001 (at most 1000)"
    )
    assert await count(api) == 0
    payload = {"token": api.token, "smsdata": [entry] * 1000}
    data = await api.call("addalotofsms", payload, "json")
    assert data["error"] == 0 and len(data["sms_ids"]) == 1000
    assert await count(api) == 1000


async def test_thousand_numbers_in_one_sendto(api: Api) -> None:
    numbers = ",".join(f"+49157{n:08d}" for n in range(1000))
    message = await api.err(
        "addsms", {"token": api.token, "sendto": numbers, "body": "x", "device_id": api.device_id}
    )
    assert message == "Too many recipients in sendto: 1000 (at most 100; use addalotofsms for more)"
    assert await count(api) == 0


@pytest.mark.parametrize("size", [MAX_REQUEST_BYTES + 1, 10 * 1024 * 1024])
async def test_oversized_body_is_413_with_error_shape(api: Api, size: int) -> None:
    body = b"token=" + api.token.encode() + b"&body=" + b"a" * size
    response = await api.client.post(
        "/getdata/addsms", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 413
    assert await response.json() == {
        "error": 1,
        "message": f"Request body too large (at most {MAX_REQUEST_BYTES} bytes)",
    }
    assert await count(api) == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_unknown_and_foreign_device(api: Api, encoding: str) -> None:
    gw = api.gateway
    stranger, _ = await gw.create_account("stranger@example.com", "password123")
    foreign, _ = await gw.create_device(stranger, "not yours")
    base = {"token": api.token, "sendto": "+4915752982212", "body": "x"}
    for device_id in (foreign.id, 424242):
        assert await api.err("addsms", {**base, "device_id": device_id}, encoding) == (
            "Device not found"
        )
        assert (
            await api.err("getdevicestatus", {"token": api.token, "device_id": device_id}, encoding)
            == "Device not found"
        )
    # a foreign account's message is "not found", not shown
    stranger_msg = await gw.send(stranger, Outgoing("+4915752982212", "secret", foreign.id))
    assert (
        await api.err("getsmsstatus", {"token": api.token, "sms_id": stranger_msg[0]}, encoding)
        == "Sms not found"
    )
    listed = await api.ok("getallsms", {"device_id": foreign.id}, encoding)
    assert listed["count"] == 0
    assert await count(api) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timetosend", "tomorrow"),
        ("timetosend", "2021-02-30"),
        ("timetosend", "2021-01-01 25:00"),
        ("timetosend", "01/02/2021"),
        ("timetosend", "1969-12-31"),
        # digits of other scripts: Python's \d and int() read them, no client means them
        ("timetosend", "\uff12\uff10\uff12\uff11-01-01"),
        ("timetosend", "2021-01-\u0661\u0662"),
    ],
)
async def test_invalid_dates(api: Api, name: str, value: str) -> None:
    params = {"token": api.token, "sendto": "+4915752982212", "body": "x",
              "device_id": api.device_id, name: value}  # fmt: skip
    assert await api.err("addsms", params) == "Invalid date in timetosend"
    for filt in ("begindate", "enddate"):
        assert await api.err("getallsms", {"token": api.token, filt: value}) == (
            f"Invalid date in {filt}"
        )
    assert await count(api) == 0


async def test_non_numeric_ids(api: Api) -> None:
    t = api.token
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("addsms", {"sendto": "+4915752982212", "body": "x", "device_id": "abc"},
         "Invalid device_id: abc"),
        ("addsms", {"sendto": "+4915752982212", "body": "x", "device_id": "1.5"},
         "Invalid device_id: 1.5"),
        ("addsms", {"sendto": "+4915752982212", "body": "x", "device_id": api.device_id,
                    "customerid": "x1"}, "Invalid customerid: x1"),
        ("getsmsstatus", {"sms_id": "12abc"}, "Invalid sms_id: 12abc"),
        ("getsmsstatus", {"sms_id": "99999999999999999999999"},
         "Invalid sms_id: 99999999999999999999999"),
        ("getdevicestatus", {"device_id": "one"}, "Invalid device_id: one"),
        ("getallsms", {"device_id": "x"}, "Invalid device_id: x"),
        ("getallsms", {"status": "new"}, "Invalid status: new"),
        ("savecontact", {"phone": "+4915752982212", "tag_id": "t"}, "Invalid tag_id: t"),
        # int() would read these as 12, 1000 and 1
        ("getsmsstatus", {"sms_id": "\u0661\u0662"}, "Invalid sms_id: \u0661\u0662"),
        ("getsmsstatus", {"sms_id": "1_000"}, "Invalid sms_id: 1_000"),
        ("addsms", {"sendto": "+4915752982212", "body": "x", "device_id": "\uff11"},
         "Invalid device_id: \uff11"),
        ("getallsms", {"limit": "\u0661\u0662"}, "Invalid limit: \u0661\u0662"),
        ("getsmsstatus", {}, "Parameter sms_id is required"),
        ("getdevicestatus", {}, "Parameter device_id is required"),
    ]  # fmt: skip
    for method, params, message in cases:
        assert await api.err(method, {"token": t, **params}) == message, (method, params)


async def test_sql_metacharacters_in_every_field(api: Api) -> None:
    # Stored verbatim where text is free (body, titles, names), rejected cleanly where the field
    # has a format; never a crash, never a changed row count elsewhere.
    tag = (await api.ok("savetag", {"title": "t"}))["tag_id"]
    for meta in SQL_META:
        sms_id = await api.send(body=f"x{meta}y")
        item = (await api.ok("getallsms", {}, "get"))["smss"][str(sms_id)]
        assert item["body"] == f"x{meta}y"
        assert (await api.ok("savetag", {"title": meta}))["tag_id"] > 0
        await api.ok("savecontact", {"phone": "+4915752982212", "tag_id": tag, "fullname": meta})
        await api.ok("savepaket", {"title": meta, "body": meta, "device_id": api.device_id,
                                   "tags": str(tag)})  # fmt: skip
        for field in ("sendto", "device_id", "sim", "timetosend", "customerid", "urgent"):
            params = {"token": api.token, "sendto": "+4915752982212", "body": "x",
                      "device_id": api.device_id, field: meta}  # fmt: skip
            data = await api.call("addsms", params)
            assert data["error"] == 1, (field, meta, data)
        for field in ("device_id", "sim", "status", "customerid", "phone", "begindate",
                      "enddate", "timezone", "orderbydesc", "limit"):  # fmt: skip
            data = await api.call("getallsms", {"token": api.token, field: meta}, "get")
            assert data["error"] == 1, (field, meta, data)
        for method, field in (("getsmsstatus", "sms_id"), ("getdevicestatus", "device_id"),
                              ("savecontact", "tag_id"), ("savepaket", "tags")):  # fmt: skip
            data = await api.call(method, {"token": api.token, field: meta}, "get")
            assert data["error"] == 1
        data = await api.call("gettoken", {"email": meta, "pass": meta})
        assert data == {"error": 1, "message": "Login or password incorrect"}
        assert await api.err("addsms", {"token": meta}) == "Token is invalid"
    # every SMS in the table is one we meant to store
    assert await count(api) == 2 * len(SQL_META)


async def test_malformed_multipart(api: Api) -> None:
    for ctype, body in (
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=zzz", b"no boundary in here"),
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: form-data"),
    ):
        response = await api.client.post(
            f"/getdata/addsms?token={api.token}", data=body, headers={"Content-Type": ctype}
        )
        assert response.status == 200
        data = await response.json()
        assert data["error"] == 1, data


async def test_multipart_file_parts_are_ignored(api: Api) -> None:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("token", api.token)
    form.add_field("sendto", "+4915752982212")
    form.add_field("body", "text part")
    form.add_field("device_id", str(api.device_id))
    form.add_field("body", b"file content", filename="body.txt")
    response = await api.client.post("/getdata/addsms", data=form)
    data = await response.json()
    assert data["error"] == 0
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(data["sms_id"])]
    assert item["body"] == "text part"


async def test_garbage_parameter_sets_are_not_aliases(api: Api) -> None:
    params = {"token": api.token, "userid": "1", "password": "x", "mobile": "+4915752982212",
              "message": "hi", "device_id": api.device_id}  # fmt: skip
    assert await api.err("addsms", params) == "Parameter sendto is required"


TEXT = st.text(alphabet=string.printable + "äß€\u00a0😀", max_size=40)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(
        [
            "gettoken",
            "addsms",
            "smstosend",
            "addalotofsms",
            "getallsms",
            "savetag",
            "savecontact",
            "savepaket",
            "getalldevices",
            "getsmsstatus",
            "getdevicestatus",
        ]
    ),  # fmt: skip
    params=st.dictionaries(
        st.sampled_from(
            [
                "sendto",
                "body",
                "device_id",
                "sim",
                "timetosend",
                "customerid",
                "urgent",
                "sms_id",
                "tag_id",
                "tags",
                "title",
                "phone",
                "datajson",
                "begindate",
                "timezone",
                "limit",
            ]
        ),  # fmt: skip
        TEXT,
        max_size=8,
    ),
    encoding=st.sampled_from(ENCODINGS),
)
async def test_fuzz_never_5xx(api: Api, method: str, params: dict[str, str], encoding: str) -> None:
    response = await api.raw(method, {"token": api.token, **params}, encoding)
    assert response.status == 200
    data = await response.json()
    assert data["error"] in (0, 1)
    if data["error"] == 1:
        assert isinstance(data["message"], str) and data["message"]


async def test_concurrent_requests_all_stored(api: Api) -> None:
    ids = await asyncio.gather(*(api.send(body=f"m{i}") for i in range(200)))
    assert len(set(ids)) == 200
    assert await count(api) == 200


# -- lone surrogates: valid JSON escapes that are not valid Unicode text ------------------------

LONE = "\\ud800"  # as written in a JSON text: a high surrogate with no low one after it


async def post_json(api: Api, method: str, text: str) -> dict[str, Any]:
    response = await api.client.post(
        f"/getdata/{method}", data=text.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def test_lone_surrogates_in_json_become_replacement_characters(api: Api) -> None:
    # Decoded as they are, they cannot be written as UTF-8: the database write failed (503 for an
    # SMS, 500 for a tag or contact). They are text gone wrong, like invalid UTF-8 bytes, so they
    # become U+FFFD; a valid escaped pair (what PHP's json_encode writes for an emoji) is kept.
    t, d = api.token, api.device_id
    text = f"a{LONE}b \\ud83d\\ude00 \\udfff"
    sms = await post_json(api, "addsms", f'{{"token":"{t}","device_id":{d},'
                          f'"sendto":"+4915752982212","body":"{text}"}}')  # fmt: skip
    assert sms["error"] == 0, sms
    tag = await post_json(api, "savetag", f'{{"token":"{t}","title":"t{LONE}"}}')
    assert tag["error"] == 0, tag
    tag_id = tag["tag_id"]
    contact = await post_json(api, "savecontact", f'{{"token":"{t}","tag_id":{tag_id},'
                              f'"phone":"+4915752982212","fullname":"{LONE}"}}')  # fmt: skip
    assert contact["error"] == 0, contact
    paket = await post_json(api, "savepaket", f'{{"token":"{t}","device_id":{d},'
                            f'"title":"{LONE}","body":"p{LONE}","tags":"{tag_id}"}}')  # fmt: skip
    assert paket["error"] == 0, paket
    entry = f'{{"sendto":"+4915752982212","body":"batch{LONE}","device_id":{d}}}'
    batch = await post_json(api, "addalotofsms", f'{{"token":"{t}","smsdata":[{entry},{entry}]}}')
    assert batch["error"] == 0 and len(batch["sms_ids"]) == 2, batch
    # datajson as a string inside a JSON body: the escape survives the outer decoding
    inner = json.dumps(f'{{"token":"{t}","smsdata":[{entry}]}}')
    nested = await post_json(api, "addalotofsms", f'{{"datajson":{inner}}}')
    assert nested["error"] == 0, nested
    smss = (await api.ok("getallsms", {}, "get"))["smss"]
    assert smss[str(sms["sms_id"])]["body"] == "a\ufffdb \U0001f600 \ufffd"
    assert smss[str(batch["sms_ids"][0])]["body"] == "batch\ufffd"
    assert smss[str(nested["sms_ids"][0])]["body"] == "batch\ufffd"
    assert [m["pakettitle"] for m in smss.values() if m["paketid"]] == ["\ufffd"]
    assert await count(api) == 5


async def test_lone_surrogates_in_json_keys_are_harmless(api: Api) -> None:
    data = await post_json(api, "addsms", f'{{"token":"{api.token}","{LONE}":"x"}}')
    assert data == {"error": 1, "message": "Parameter sendto is required"}


@pytest.mark.parametrize("form", ["escape", "bytes"])
async def test_agent_api_lone_surrogates_become_replacement_characters(api: Api, form: str) -> None:
    # The agent protocol's JSON too: an incoming SMS whose text holds a lone surrogate (json.loads
    # of bytes decodes with surrogatepass, so the raw bytes ED A0 80 make one as well).
    body = LONE.encode() if form == "escape" else b"\xed\xa0\x80"
    raw = (b'{"messages":[{"key":"k1","from":"+4915752982212","body":"in' + body + b'",'
           b'"received_at":"2024-01-01T00:00:00Z"}]}')  # fmt: skip
    response = await api.client.post(
        "/agent/v1/incoming",
        data=raw,
        headers={"Authorization": f"Bearer {api.device_token}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status == 200, await response.text()
    [accepted] = (await response.json())["accepted"]
    item = (await api.ok("getallsms", {"status": 5}, "get"))["smss"][str(accepted["sms_id"])]
    assert item["body"] == "in\ufffd"


@pytest.mark.parametrize("ctype", ["application/json", None])
async def test_json_body_with_a_utf8_bom(api: Api, ctype: str | None) -> None:
    # .NET's and PowerShell's UTF-8 encoders write a byte order mark before the JSON.
    text = json.dumps({"token": api.token, "device_id": api.device_id,
                       "sendto": "+4915752982212", "body": "bom"})  # fmt: skip
    headers = {"Content-Type": ctype} if ctype else {}
    response = await api.client.post(
        "/getdata/addsms", data=b"\xef\xbb\xbf" + text.encode(), headers=headers
    )
    data = await response.json()
    assert data["error"] == 0, data
    assert await count(api) == 1


@pytest.mark.parametrize("bad", ["foreign", "unknown"])
@pytest.mark.parametrize("where", [0, 4])
async def test_batch_naming_a_device_it_may_not_use_stores_nothing(
    api: Api, bad: str, where: int
) -> None:
    # The device check happens after every entry parsed: the batch is still all or nothing.
    stranger, _ = await api.gateway.create_account("stranger@example.com", "password123")
    foreign, _ = await api.gateway.create_device(stranger, "not yours")
    entries: list[dict[str, Any]] = [
        {"sendto": "+4915752982212", "body": f"m{i}", "device_id": api.device_id} for i in range(5)
    ]
    entries[where]["device_id"] = foreign.id if bad == "foreign" else 424242
    for encoding in ("json", "urlencoded"):
        payload = {"token": api.token, "smsdata": entries}
        params = payload if encoding == "json" else {"datajson": json.dumps(payload)}
        assert await api.err("addalotofsms", params, encoding) == (
            f"smsdata[{where}]: Device not found"
        )
    assert await count(api) == 0


@pytest.mark.parametrize("verb", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
async def test_wrong_http_method_gets_the_error_shape(api: Api, verb: str) -> None:
    # HTTP 200 like every API-level error (Guzzle throws on a 4xx and hides the message), and
    # nothing is stored although the request carries a whole valid addsms.
    params = {"token": api.token, "device_id": str(api.device_id), "sendto": "+4915752982212",
              "body": "x"}  # fmt: skip
    response = await api.client.request(verb, "/getdata/addsms", params=params, data=params)
    assert response.status == 200
    assert response.headers["Allow"] == "GET, POST"
    assert await response.json() == {
        "error": 1,
        "message": f"HTTP method {verb} not supported; use GET or POST",
    }
    assert await count(api) == 0


async def test_head_is_answered_without_side_effects(api: Api) -> None:
    params = {"token": api.token, "device_id": str(api.device_id), "sendto": "+4915752982212",
              "body": "x"}  # fmt: skip
    response = await api.client.head("/getdata/addsms", params=params)
    assert response.status == 200
    assert await count(api) == 0


@pytest.mark.parametrize("path", ["/getdata", "/getdata/", "/getdata/addsms/extra", "/getdata//"])
@pytest.mark.parametrize("verb", ["GET", "POST"])
async def test_paths_without_a_method_are_unknown_methods(api: Api, path: str, verb: str) -> None:
    response = await api.client.request(verb, path, params={"token": api.token})
    assert response.status == 200
    assert await response.json() == {"error": 1, "message": "Unknown method"}
