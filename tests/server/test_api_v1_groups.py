"""Contact groups over /api/v1: CRUD, codes 028/029, CSV import with per-row errors, and sends
that name groups (each contact's name and variables fill a template)."""

from __future__ import annotations

from tests.server._v1 import NUMBER, V1


async def group(env: V1, name: str = "club") -> int:
    made = await env.ok("POST", "/groups", key="send", json={"name": name})
    assert made["contacts"] == 0
    gid: int = made["id"]
    return gid


async def test_group_crud_and_its_codes(v1: V1) -> None:
    gid = await group(v1)
    err = await v1.err("POST", "/groups", "already_exists", key="send", json={"name": "club"})
    assert err["details"]["field"] == "name"
    other = await group(v1, "other")
    await v1.err("PATCH", f"/groups/{other}", "already_exists", key="send",
                 json={"name": "club"})  # fmt: skip
    renamed = await v1.ok("PATCH", f"/groups/{gid}", key="send", json={"name": "friends"})
    assert renamed["name"] == "friends"
    listed = await v1.ok("GET", "/groups", key="read")
    assert [g["name"] for g in listed["groups"]] == ["friends", "other"]
    assert (await v1.ok("DELETE", f"/groups/{gid}", key="send")) == {"deleted": gid}
    await v1.err("GET", f"/groups/{gid}", "group_not_found", key="read")
    await v1.err("DELETE", f"/groups/{gid}", "group_not_found", key="send")
    await v1.err("GET", "/groups/0", "invalid_input", key="read")


async def test_contact_crud(v1: V1) -> None:
    gid = await group(v1)
    made = await v1.ok("POST", f"/groups/{gid}/contacts", key="send",
                       json={"number": "+49 157 5298 2212", "name": " Ann ",
                             "variables": {"code": "12"}})  # fmt: skip
    assert (made["number"], made["name"], made["variables"]) == (NUMBER, "Ann", {"code": "12"})
    cid = made["id"]
    # the same number (written otherwise) is the same contact: 029
    await v1.err("POST", f"/groups/{gid}/contacts", "already_exists", key="send",
                 json={"number": "004915752982212"})  # fmt: skip
    await v1.err("POST", f"/groups/{gid}/contacts", "invalid_numbers", key="send",
                 json={"number": "call me"})  # fmt: skip
    await v1.err("POST", f"/groups/{gid}/contacts", "invalid_input", key="send",
                 json={"number": "+4915752982213", "variables": {"9x": "no"}})  # fmt: skip
    await v1.err("POST", "/groups/999/contacts", "group_not_found", key="send",
                 json={"number": NUMBER})  # fmt: skip
    second = await v1.ok("POST", f"/groups/{gid}/contacts", key="send",
                         json={"number": "+4915752982213"})  # fmt: skip
    await v1.err("PATCH", f"/groups/{gid}/contacts/{second['id']}", "already_exists",
                 key="send", json={"number": NUMBER})  # fmt: skip
    changed = await v1.ok("PATCH", f"/groups/{gid}/contacts/{cid}", key="send",
                          json={"name": "Ann B.", "variables": {}})  # fmt: skip
    assert (changed["name"], changed["variables"], changed["number"]) == ("Ann B.", {}, NUMBER)
    assert (await v1.ok("GET", f"/groups/{gid}/contacts/{cid}", key="read")) == changed
    assert (await v1.ok("GET", f"/groups/{gid}", key="read"))["contacts"] == 2
    page = await v1.ok("GET", f"/groups/{gid}/contacts", key="read", params={"limit": "1"})
    assert [c["id"] for c in page["contacts"]] == [cid] and page["next_cursor"] == cid
    rest = await v1.ok("GET", f"/groups/{gid}/contacts", key="read",
                       params={"cursor": str(cid)})  # fmt: skip
    assert [c["id"] for c in rest["contacts"]] == [second["id"]] and rest["next_cursor"] is None
    await v1.ok("DELETE", f"/groups/{gid}/contacts/{cid}", key="send")
    await v1.err("GET", f"/groups/{gid}/contacts/{cid}", "not_found", key="read")
    # a contact is reached through its own group only
    other = await group(v1, "other")
    await v1.err("GET", f"/groups/{other}/contacts/{second['id']}", "not_found", key="read")


async def test_csv_import_names_each_refused_row(v1: V1) -> None:
    gid = await group(v1)
    await v1.ok("POST", f"/groups/{gid}/contacts", key="send", json={"number": NUMBER})
    csv = (
        "\ufeffNumber,Name,code\n"  # a BOM and capitals, as spreadsheets write
        "+4915752982213,Ann,1\n"
        "not a number,Bob,2\n"
        "\n"
        '"+4915752982214","Cy, Jr.",3\n'
        "+4915752982213,Ann again,4\n"
        f"{NUMBER},Old,5\n"
        "+4915752982215,Dee\n"
    )
    report = await v1.ok("POST", f"/groups/{gid}/import", key="send", json={"csv": csv})
    assert (report["rows"], report["created"], report["unchanged"], report["updated"],
            report["rejected"]) == (6, 2, 1, 0, 3)  # fmt: skip
    assert [(e["row"], e["code"]) for e in report["errors"]] == [
        (3, "invalid_numbers"), (6, "already_exists"), (8, "invalid_input")]  # fmt: skip
    assert "line 2" in report["errors"][1]["message"]
    page = await v1.ok("GET", f"/groups/{gid}/contacts", key="read")
    by_number = {c["number"]: c for c in page["contacts"]}
    assert by_number["+4915752982214"]["name"] == "Cy, Jr."
    assert by_number["+4915752982214"]["variables"] == {"code": "3"}
    assert by_number[NUMBER]["name"] == ""  # unchanged without update
    again = await v1.ok("POST", f"/groups/{gid}/import", key="send",
                        json={"csv": f"phone,name\n{NUMBER},New\n", "update": True})  # fmt: skip
    assert (again["created"], again["updated"]) == (0, 1)
    contact = next(c for c in (await v1.ok("GET", f"/groups/{gid}/contacts", key="read"))
                   ["contacts"] if c["number"] == NUMBER)  # fmt: skip
    assert contact["name"] == "New"


async def test_csv_import_refuses_a_file_without_a_number_column(v1: V1) -> None:
    gid = await group(v1)
    for csv, words in (
        ("name,code\nAnn,1\n", "number"),
        ("number,9bad\n1,2\n", "variable"),
        ("number,name,name\n1,a,b\n", "own"),
        ('number\n"unclosed\n', "line"),
    ):
        err = await v1.err("POST", f"/groups/{gid}/import", "invalid_input", key="send",
                           json={"csv": csv})  # fmt: skip
        assert words in err["message"], err
    assert (await v1.ok("GET", f"/groups/{gid}", key="read"))["contacts"] == 0


async def test_send_to_groups_fills_each_contacts_variables(v1: V1) -> None:
    a, b = await group(v1, "a"), await group(v1, "b")
    csv = "number,name,code\n+4915752982213,Ann,11\n+4915752982214,Bob,22\n"
    await v1.ok("POST", f"/groups/{a}/import", key="send", json={"csv": csv})
    await v1.ok("POST", f"/groups/{b}/import", key="send",
                json={"csv": "number,name\n+4915752982214,Bob\n+4915752982215,Cy\n"})  # fmt: skip
    template = await v1.ok("POST", "/templates", key="send",
                           json={"name": "t", "body": "Dear {name}, code {code}"})  # fmt: skip
    answer = await v1.ok("POST", "/messages", key="send",
                         json={"groups": [a, b], "template_id": template["id"],
                               "to": [NUMBER], "variables": {"code": "00"}})  # fmt: skip
    # Bob is in both groups and gets one message; the given number has no {name}: refused.
    assert [m["number"] for m in answer["messages"]] == [
        NUMBER, "+4915752982213", "+4915752982214", "+4915752982215"]  # fmt: skip
    assert answer["messages"][0]["error"]["code"] == "template_mismatch"
    assert (answer["accepted"], answer["rejected"]) == (3, 1)
    texts = []
    for m in answer["messages"][1:]:
        texts.append((await v1.ok("GET", f"/messages/{m['id']}", key="read"))["text"])
    assert texts == ["Dear Ann, code 11", "Dear Bob, code 22", "Dear Cy, code 00"]
    await v1.err("POST", "/messages", "group_not_found", key="send",
                 json={"groups": [a, 999], "text": "hi"})  # fmt: skip
    await v1.err(
        "POST", "/messages", "group_not_found", key=v1.other_key, json={"groups": [a], "text": "hi"}
    )  # another account's group
    empty = await group(v1, "empty")
    await v1.err("POST", "/messages", "invalid_numbers", key="send",
                 json={"groups": [empty], "text": "hi"})  # fmt: skip
