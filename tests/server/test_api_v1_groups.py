"""Contact groups over /api/v1: CRUD, CSV import, paging, sends to a group (names fill a
template's {name}), and the sharing with the compat API's tags and contacts."""

from __future__ import annotations

from tests.server._v1 import NUMBER, V1

CSV = """Name,Phone
Ann,+4915700000001
Bob,0049 157 00000002
,+4915700000003
Eve,not a number
Ann again,+4915700000001

Dan,+4915700000004
"""


async def test_groups_contacts_and_csv_import(v1: V1) -> None:
    g = await v1.ok("POST", "/groups", key="send", json={"name": "club"})
    assert (g["name"], g["contacts"]) == ("club", 0)
    added = await v1.ok("POST", f"/groups/{g['id']}/contacts", key="send",
                        json={"phone": "+49 157 52982212", "name": "Zoe"})  # fmt: skip
    assert (added["phone"], added["name"], added["group_id"]) == (NUMBER, "Zoe", g["id"])
    await v1.err("POST", f"/groups/{g['id']}/contacts", "already_exists", key="send",
                 json={"phone": NUMBER})  # fmt: skip
    await v1.err("POST", f"/groups/{g['id']}/contacts", "invalid_input", key="send",
                 json={"phone": "abc"})  # fmt: skip
    result = await v1.ok("POST", f"/groups/{g['id']}/contacts/import", key="send",
                         json={"csv": CSV})  # fmt: skip
    bad = {"line": 5, "error": "Invalid phone number: not a number"}
    assert result == {"added": 4, "skipped": 1, "rejected": [bad]}
    await v1.err("POST", f"/groups/{g['id']}/contacts/import", "invalid_input", key="send",
                 json={"csv": "number\n+4915700000009\n"})  # fmt: skip
    assert (await v1.ok("GET", f"/groups/{g['id']}", key="read"))["contacts"] == 5
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await v1.ok("GET", f"/groups/{g['id']}/contacts", key="read", params=params)
        seen += [(c["phone"], c["name"]) for c in page["contacts"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [(NUMBER, "Zoe"), ("+4915700000001", "Ann"), ("+4915700000002", "Bob"),
                    ("+4915700000003", None), ("+4915700000004", "Dan")]  # fmt: skip
    renamed = await v1.ok("PATCH", f"/groups/{g['id']}", key="send", json={"name": "members"})
    assert renamed["name"] == "members"
    contact_id = page["contacts"][-1]["id"]
    assert await v1.ok("DELETE", f"/groups/{g['id']}/contacts/{contact_id}", key="send") == {
        "deleted": contact_id}  # fmt: skip
    await v1.err("DELETE", f"/groups/{g['id']}/contacts/{contact_id}", "not_found", key="send")
    assert await v1.ok("DELETE", f"/groups/{g['id']}", key="send") == {"deleted": g["id"]}
    await v1.err("GET", f"/groups/{g['id']}", "group_not_found", key="read")
    await v1.err("GET", f"/groups/{g['id']}/contacts", "group_not_found", key="read")


async def test_send_to_a_group_fills_names(v1: V1) -> None:
    g = await v1.ok("POST", "/groups", key="send", json={"name": "club"})
    csv = "phone,name\n+4915700000001,Ann\n+4915700000002,\n"
    await v1.ok("POST", f"/groups/{g['id']}/contacts/import", key="send", json={"csv": csv})
    t = await v1.ok("POST", "/templates", key="send", json={"name": "t", "body": "Hi {name}!"})
    sent = await v1.ok("POST", "/messages", key="send",
                       json={"group_id": g["id"], "template_id": t["id"]})  # fmt: skip
    ann, nameless = sent["messages"]
    assert ann["to"] == "+4915700000001" and ann["id"] is not None
    assert nameless["error"]["code"] == "template_mismatch"
    got = await v1.ok("GET", f"/messages/{ann['id']}", key="read")
    assert got["text"] == "Hi Ann!"
    sent = await v1.ok("POST", "/messages", key="send",
                       json={"group_id": g["id"], "template_id": t["id"],
                             "variables": {"name": "friend"}})  # fmt: skip
    assert sent["accepted"] == 2  # a contact's own name wins over the shared default
    plain = await v1.ok("POST", "/messages", key="send", json={"group_id": g["id"], "text": "x"})
    assert plain["accepted"] == 2
    await v1.err("POST", "/messages", "group_not_found", key="send",
                 json={"group_id": 999, "text": "x"})  # fmt: skip
    await v1.err("POST", "/messages", "invalid_input", key="send",
                 json={"group_id": g["id"], "to": [NUMBER], "text": "x"})  # fmt: skip


async def test_groups_are_the_compat_apis_tags(v1: V1) -> None:
    form = {"token": v1.compat_token, "title": "from compat"}
    response = await v1.client.post("/getdata/savetag", data=form)
    tag_id = (await response.json())["tag_id"]
    form = {"token": v1.compat_token, "tag_id": tag_id, "phone": NUMBER, "fullname": "Ann"}
    response = await v1.client.post("/getdata/savecontact", data=form)
    assert (await response.json())["error"] == 0
    group = await v1.ok("GET", f"/groups/{tag_id}", key="read")
    assert (group["name"], group["contacts"]) == ("from compat", 1)
    listed = await v1.ok("GET", "/groups", key="read")
    assert [g["id"] for g in listed["groups"]] == [tag_id]
