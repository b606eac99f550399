"""Templates over /api/v1: CRUD, and sends that fill them per recipient; a placeholder left
without a value refuses that recipient with template_mismatch (Onfon's 024)."""

from __future__ import annotations

from simhive.server.core.keys import Caller
from tests.server._v1 import NUMBER, V1

OTHER = "+4915700000001"


async def test_template_crud(v1: V1) -> None:
    body = {"name": "welcome", "body": "Hi {name}, your code is {code}. {name}!"}
    made = await v1.ok("POST", "/templates", key="send", json=body)
    assert made["variables"] == ["name", "code"]
    await v1.err("POST", "/templates", "already_exists", key="send",
                 json={"name": "welcome", "body": "x"})  # fmt: skip
    await v1.err("POST", "/templates", "invalid_input", key="send", json={"name": "x"})
    got = await v1.ok("GET", f"/templates/{made['id']}", key="read")
    assert got == made
    changed = await v1.ok("PATCH", f"/templates/{made['id']}", key="send",
                          json={"body": "Hello {first}"})  # fmt: skip
    assert (changed["name"], changed["body"], changed["variables"]) == (
        "welcome", "Hello {first}", ["first"])  # fmt: skip
    other = await v1.ok("POST", "/templates", key="send", json={"name": "alert", "body": "{x}"})
    await v1.err("PATCH", f"/templates/{other['id']}", "already_exists", key="send",
                 json={"name": "welcome"})  # fmt: skip
    listed = await v1.ok("GET", "/templates", key="read")
    assert [t["name"] for t in listed["templates"]] == ["alert", "welcome"]
    assert await v1.ok("DELETE", f"/templates/{other['id']}", key="send") == {
        "deleted": other["id"]}  # fmt: skip
    await v1.err("GET", f"/templates/{other['id']}", "not_found", key="read")


async def test_send_fills_the_template_per_recipient(v1: V1) -> None:
    body = {"name": "otp", "body": "Dear {name}, your code is {code} ({shop})"}
    t = await v1.ok("POST", "/templates", key="send", json=body)
    sent = await v1.ok("POST", "/messages", key="send", json={
        "template_id": t["id"],
        "variables": {"shop": "Ann's Bakery"},
        "recipients": [
            {"to": NUMBER, "variables": {"name": "Ann", "code": "1234"}},
            {"to": OTHER, "variables": {"name": "Bob"}},  # no code
            {"to": "junk", "variables": {"name": "Eve", "code": "9"}},
            {"to": OTHER, "variables": {"name": "Zoë", "code": "5678", "unused": "x"}},
        ],
    })  # fmt: skip
    assert (sent["accepted"], sent["rejected"]) == (2, 2)
    first, missing, junk, last = sent["messages"]
    assert missing["error"]["code"] == "template_mismatch"
    assert "{code}" in missing["error"]["message"]
    assert missing["number"] == OTHER and missing["id"] is None
    assert junk["error"]["code"] == "invalid_numbers"
    # Each recipient's own text decides: "ë" is not in the GSM alphabet.
    assert (first["encoding"], last["encoding"]) == ("gsm7", "ucs2")
    texts = [
        (await v1.ok("GET", f"/messages/{m['id']}", key="read"))["text"] for m in (first, last)
    ]
    assert texts == ["Dear Ann, your code is 1234 (Ann's Bakery)",
                     "Dear Zoë, your code is 5678 (Ann's Bakery)"]  # fmt: skip
    assert sent["parts_total"] == 2 and sent["encoding"] is None and sent["parts"] is None


async def test_template_mismatch_refuses_the_whole_request_when_asked(v1: V1) -> None:
    t = await v1.ok("POST", "/templates", key="send", json={"name": "t", "body": "Hi {name}"})
    body = {"template_id": t["id"], "to": [NUMBER, OTHER], "all_or_nothing": True}
    error = await v1.err("POST", "/messages", "template_mismatch", key="send", json=body)
    assert error["details"]["rejected"][0]["code"] == "template_mismatch"
    # Nobody has the variable: refused as a whole, with or without all_or_nothing.
    await v1.err("POST", "/messages", "template_mismatch", key="send",
                 json={"template_id": t["id"], "to": [NUMBER]})  # fmt: skip
    sent = await v1.ok("POST", "/messages", key="send", json={
        "template_id": t["id"], "to": [NUMBER, OTHER], "variables": {"name": "all"}})  # fmt: skip
    assert sent["accepted"] == 2 and sent["encoding"] == "gsm7" and sent["parts"] == 1
    page = await v1.ok("GET", "/messages", key="read")
    assert [m["text"] for m in page["messages"]] == ["Hi all", "Hi all"]


async def test_send_needs_exactly_one_text_source_and_one_recipient_list(v1: V1) -> None:
    t = await v1.ok("POST", "/templates", key="send", json={"name": "t", "body": "x"})
    for body in ({"to": [NUMBER]}, {"to": [NUMBER], "text": "a", "template_id": t["id"]},
                 {"to": [NUMBER], "recipients": [{"to": NUMBER}], "text": "a"},
                 {"recipients": [{"to": NUMBER, "variables": {"a": 1}}], "text": "a"},
                 {"recipients": [{"variables": {}}], "text": "a"}):  # fmt: skip
        await v1.err("POST", "/messages", "invalid_input", key="send", json=body)
    await v1.err("POST", "/messages", "invalid_numbers", key="send", json={"text": "a"})
    other = Caller(await v1.gateway.account_by_email("other@example.com"))
    theirs = await v1.native.templates.create(other, "theirs", "x")
    await v1.err("POST", "/messages", "not_found", key="send",
                 json={"to": [NUMBER], "template_id": theirs.id})  # fmt: skip
