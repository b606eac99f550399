"""The console's content pages over HTTP, in process: templates, groups (contacts and CSV import),
campaigns with their statistics, and Compose to a group from a template. Each form's effect is
read back from the core or the native API; bad input comes back as the form with a message;
another account's records are not found (404); every POST needs the CSRF token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp

from simhive.server.api.v1.campaign_job import RUNNER
from simhive.server.api.v1.http import NATIVE
from simhive.server.core.campaigns import CampaignSpec
from simhive.server.core.keys import Caller
from simhive.server.core.models import ReportEvent
from simhive.server.core.native import Native
from tests.console.test_console_http import PASSWORD, Console
from tests.console.test_console_http import console as console  # a fixture these tests use
from tests.support.testdb import AppDb

US = 1_000_000
NUMBERS = [f"+49157529822{n:02d}" for n in range(10)]


def native(c: Console) -> Native:
    app = c.client.app
    assert app is not None
    found: Native = app[NATIVE]
    return found


def tomorrow() -> str:
    """A schedule a day ahead, as a datetime-local field sends it (within any time zone)."""
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def me(c: Console) -> Caller:
    return Caller(c.account)


async def other(c: Console) -> Caller:
    account, _ = await c.gw.create_account("other@example.com", PASSWORD)
    return Caller(account)


async def messages(db: AppDb) -> dict[str, tuple[str, int | None]]:
    """number -> (text, SIM) of the stored messages."""
    return {n: (b, s) for n, b, s in await db.rows("SELECT sendto, body, sim FROM messages")}


def flash(text: str) -> list[str]:
    return re.findall(r'class="flash (?:ok|error)"[^>]*>([^<]*)<', text)


async def test_templates_are_created_edited_and_deleted(console: Console) -> None:
    templates = native(console).templates
    location, _ = await console.post("/templates", {"name": "otp", "body": "Code {code}, {name}"})
    assert location == "/templates"
    [t] = await templates.list(me(console))
    assert (t.name, t.body, t.variables) == ("otp", "Code {code}, {name}", ["code", "name"])
    listed = await console.page("/templates")
    assert f'data-id="{t.id}"' in listed and "<code>{code}</code>" in listed
    assert "Code {code}, {name}" in await console.page(f"/templates/{t.id}")
    await console.post(f"/templates/{t.id}", {"name": "otp2", "body": "Your code: {code}"})
    t = await templates.get(me(console), t.id)
    assert (t.name, t.body) == ("otp2", "Your code: {code}")
    # Bad input: the form again, with the message and what was typed.
    _, text = await console.post("/templates", {"name": "", "body": "typed"}, status=400)
    assert "Invalid template name" in text and "typed</textarea>" in text
    _, text = await console.post("/templates", {"name": "otp2", "body": "again"}, status=400)
    assert 'class="flash error"' in text and "again</textarea>" in text  # the name is taken
    _, text = await console.post(f"/templates/{t.id}", {"name": "x", "body": ""}, status=400)
    assert "Invalid template body" in text
    assert (await templates.get(me(console), t.id)).body == "Your code: {code}"
    await console.post(f"/templates/{t.id}/delete", {})
    assert await templates.list(me(console)) == []


async def test_another_accounts_template_is_not_found(console: Console) -> None:
    them = await other(console)
    theirs = await native(console).templates.create(them, "theirs", "Hi {x}")
    assert "Template not found" in await console.page(f"/templates/{theirs.id}", 404)
    await console.page("/templates/abc", 404)
    await console.post(f"/templates/{theirs.id}", {"name": "mine", "body": "y"}, status=404)
    await console.post(f"/templates/{theirs.id}/delete", {}, status=404)
    assert "theirs" not in await console.page("/templates")
    kept = await native(console).templates.list(them)
    assert [(t.name, t.body) for t in kept] == [("theirs", "Hi {x}")]


async def test_groups_contacts_and_csv_import(console: Console) -> None:
    groups = native(console).groups
    location, _ = await console.post("/groups", {"name": "club"})
    group_id = int(location.rsplit("/", 1)[1])
    assert location == f"/groups/{group_id}"
    await console.post(f"/groups/{group_id}/contacts", {"phone": NUMBERS[0], "contact_name": "Ann"})
    _, text = await console.post(f"/groups/{group_id}/contacts", {"phone": NUMBERS[0]}, status=400)
    assert "in the group already" in text
    _, text = await console.post(
        f"/groups/{group_id}/contacts", {"phone": "not a number", "contact_name": "Zed"}, status=400
    )
    assert 'class="flash error"' in text and 'value="not a number"' in text
    # A file upload (multipart), parsed as POST /api/v1/groups/{id}/import parses it.
    csv = f"Name,Phone\nBob,{NUMBERS[1]}\nAnn again,{NUMBERS[0]}\nBad,12ab\n,{NUMBERS[2]}\n"
    form = aiohttp.FormData()
    form.add_field("csrf", await console.csrf())
    form.add_field("file", csv.encode(), filename="club.csv", content_type="text/csv")
    response = await console.client.post(
        f"/groups/{group_id}/import", data=form, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    page = await console.page(f"/groups/{group_id}")
    [note] = flash(page)
    assert note.startswith(
        "Imported 2 contact(s); 1 already in the group. 1 line(s) refused: line 4"
    )
    contacts = await groups.contacts(me(console), group_id, 0, 100)
    assert [(c.phone, c.name) for c in contacts] == [
        (NUMBERS[0], "Ann"), (NUMBERS[1], "Bob"), (NUMBERS[2], None)]  # fmt: skip
    assert all(c.phone in page for c in contacts)
    # Pasted lines work the same; a CSV without a phone column is refused with the reason.
    await console.post(f"/groups/{group_id}/import", {"csv": f"phone\n{NUMBERS[3]}\n"})
    _, text = await console.post(f"/groups/{group_id}/import", {"csv": "a,b\n1,2\n"}, status=400)
    assert "must name its columns" in text
    form = aiohttp.FormData()
    form.add_field("csrf", await console.csrf())
    form.add_field("file", b"phone\n\xff\xfe\n", filename="x.csv", content_type="text/csv")
    response = await console.client.post(f"/groups/{group_id}/import", data=form)
    assert response.status == 400 and "not UTF-8" in await response.text()
    _, text = await console.post(f"/groups/{group_id}/import", {}, status=400)
    assert "Choose a CSV file" in text
    [g] = await groups.all(me(console))
    assert g.contacts == 4 and f'data-id="{group_id}"' in await console.page("/groups")
    await console.post(f"/groups/{group_id}/contacts/{contacts[1].id}/delete", {})
    assert (await groups.get(me(console), group_id)).contacts == 3
    await console.post(f"/groups/{group_id}", {"name": "club 2"})
    assert (await groups.get(me(console), group_id)).name == "club 2"
    _, text = await console.post("/groups", {"name": "  "}, status=400)
    assert "Invalid group name" in text
    await console.post(f"/groups/{group_id}/delete", {})
    assert await groups.all(me(console)) == []


async def test_another_accounts_group_is_not_found(console: Console) -> None:
    them = await other(console)
    theirs = await native(console).groups.create(them, "theirs")
    contact = await native(console).groups.add(them, theirs.id, NUMBERS[0], "Eve")
    base = f"/groups/{theirs.id}"
    assert "Group not found" in await console.page(base, 404)
    for path, fields in (
        (base, {"name": "mine"}),
        (f"{base}/contacts", {"phone": NUMBERS[1]}),
        (f"{base}/contacts/{contact.id}/delete", {}),
        (f"{base}/import", {"csv": f"phone\n{NUMBERS[2]}\n"}),
        (f"{base}/delete", {}),
    ):
        await console.post(path, fields, status=404)
    assert "theirs" not in await console.page("/groups")
    assert [(c.phone, c.name) for c in await native(console).groups.contacts(
        them, theirs.id, 0, 10)] == [(NUMBERS[0], "Eve")]  # fmt: skip
    mine = await native(console).groups.create(me(console), "mine")
    # A contact id of another group is not one of this group's.
    await console.post(f"/groups/{mine.id}/contacts/{contact.id}/delete", {}, status=404)


async def deliver(c: Console, lease: str, outcomes: list[str]) -> None:
    """The agent's part, as the store takes it: lease the due messages, report each outcome."""
    store, now = c.gw.store, c.gw.clock()
    leased = await store.lease_due(c.device.id, 100, lease, now, now + 60 * US)
    ids = [m.id for m in leased.messages]
    assert len(ids) == len(outcomes)
    await store.commit_lease(c.device.id, lease, ids, now)
    events = []
    for n, (sms_id, outcome) in enumerate(zip(ids, outcomes, strict=True)):
        if outcome == "failed":
            events.append(ReportEvent(f"{lease}-{n}", sms_id, "failed", now, status=9))
            continue
        events.append(ReportEvent(f"{lease}-{n}s", sms_id, "sent", now))
        if outcome != "sent":
            events.append(ReportEvent(f"{lease}-{n}r", sms_id, outcome, now + 1))
    await store.apply_events(c.device.id, events, now + 2)


def shown_stats(page: str, campaign_id: int) -> dict[str, str]:
    row = re.search(rf'<tr data-id="{campaign_id}">(.*?)</tr>', page, re.S)
    assert row is not None
    return dict(re.findall(r'data-stat="(\w+)">([^<]*)<', row.group(1)))


async def test_campaigns_show_the_apis_statistics_and_pause_resume_cancel(
    console: Console, db: AppDb
) -> None:
    n = native(console)
    group = await n.groups.create(me(console), "club")
    for number, name in ((NUMBERS[0], "Ann"), (NUMBERS[1], None)):
        await n.groups.add(me(console), group.id, number, name)
    template = await n.templates.create(me(console), "hello", "Hello {name}!")
    fields = {
        "name": "spring",
        "group": str(group.id),
        "to": f"{NUMBERS[2]}\n{NUMBERS[2]}, not-a-number",
        "template": str(template.id),
        "var_name": "friend",
        "target": f"sim:{console.device.id}:0",
        "priority": "high",
    }
    assert (await console.post("/campaigns", fields))[0] == "/campaigns"
    [c] = await n.campaigns.list_campaigns(me(console), None, None)
    # The repeated number counts once, the unreadable one is refused (failed) at creation.
    assert (c.name, c.template_id, c.group_ids, c.priority, c.recipients) == (
        "spring", template.id, (group.id,), "high", 4)  # fmt: skip
    app = console.client.app
    assert app is not None
    await app[RUNNER].tick()
    await deliver(console, "l1", ["delivered", "not_delivered", "sent"])
    key, secret = await n.create_key(me(console), "stats", ["read"])
    api = await console.client.get(
        f"/api/v1/campaigns/{c.id}/statistics", headers={"Authorization": f"Bearer {secret}"}
    )
    expected = await api.json()
    page = await console.page("/campaigns")
    shown = shown_stats(page, c.id)
    for k in ("recipients", "pending", "queued", "sent", "delivered", "unknown",
              "not_delivered", "failed", "cancelled"):  # fmt: skip
        assert shown[k] == str(expected[k]), k
    assert (expected["sent"], expected["delivered"], expected["failed"]) == (3, 1, 1)
    assert shown["delivery_rate"] == f"{expected['delivery_rate'] * 100:.1f} %" == "33.3 %"
    assert shown["duration"] != "—" and expected["duration_seconds"] is not None
    # The filled texts: the contact's name, or the campaign's default for those without one.
    texts = await messages(db)
    assert texts[NUMBERS[0]][0] == "Hello Ann!" and texts[NUMBERS[1]][0] == "Hello friend!"
    # A second one, scheduled: pause, resume, cancel.
    later = {**fields, "name": "later", "at": tomorrow(), "group": "", "template": "",
             "body": "Later", "to": NUMBERS[5]}  # fmt: skip
    await console.post("/campaigns", later)
    [second] = [x for x in await n.campaigns.list_campaigns(me(console), None, None)
                if x.name == "later"]  # fmt: skip
    assert second.send_at is not None and second.text == "Later"
    for verb, state in (("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")):
        await console.post(f"/campaigns/{second.id}/{verb}", {})
        assert (await n.campaigns.get(me(console), second.id)).state == state
    assert "Campaign later is cancelled." in await console.page("/campaigns")
    _, text = await console.post(f"/campaigns/{second.id}/pause", {}, status=400)
    assert 'class="flash error"' in text
    assert key.scopes == ("read",)


async def test_campaign_form_errors_and_another_accounts_campaign(console: Console) -> None:
    n = native(console)
    template = await n.templates.create(me(console), "otp", "Code {code}")
    base = {"name": "x", "target": "pool:all", "to": NUMBERS[0]}
    _, text = await console.post("/campaigns", {**base, "to": ""}, status=400)
    assert "Write a text or choose a template" in text
    _, text = await console.post("/campaigns", {**base, "to": "", "body": "hi"}, status=400)
    assert "No recipients" in text
    _, text = await console.post("/campaigns", {**base, "template": str(template.id)}, status=400)
    assert "template mismatch" in text and 'name="var_code"' in text  # the field, shown again
    _, text = await console.post("/campaigns", {**base, "body": "x", "at": "soon"}, status=400)
    assert "expected a date" in text
    _, text = await console.post("/campaigns", {**base, "body": "x", "group": "999"}, status=400)
    assert "Group not found" in text
    assert await n.campaigns.list_campaigns(me(console), None, None) == []
    them = await other(console)
    theirs = await n.campaigns.create(
        them, CampaignSpec(name="theirs", to=[NUMBERS[1]], text="x", send_at=tomorrow() + "Z")
    )
    for verb in ("pause", "resume", "cancel"):
        _, text = await console.post(f"/campaigns/{theirs.id}/{verb}", {}, status=404)
        assert "Campaign not found" in text
    assert (await n.campaigns.get(them, theirs.id)).state == "scheduled"
    assert "theirs" not in await console.page("/campaigns")


async def test_compose_to_a_group_from_a_template(console: Console, db: AppDb) -> None:
    n = native(console)
    group = await n.groups.create(me(console), "club")
    await n.groups.add(me(console), group.id, NUMBERS[0], "Ann")
    await n.groups.add(me(console), group.id, NUMBERS[1], "Bob")
    template = await n.templates.create(me(console), "otp", "Hi {name}, code {code}")
    # The variable fields for the chosen template (what htmx swaps in).
    fragment = await console.client.post(
        "/compose/template-fields",
        data={"csrf": await console.csrf(), "template": str(template.id)},
    )
    html = await fragment.text()
    assert 'name="var_name"' in html and 'name="var_code"' in html
    fields = {"group": str(group.id), "template": str(template.id),
              "target": f"sim:{console.device.id}:1"}  # fmt: skip
    # A variable left empty (a browser posts the blank field): the template mismatch, in the
    # form, with its fields again.
    _, text = await console.post("/compose", {**fields, "var_code": ""}, status=400)
    assert "No value for {code}" in text and 'name="var_code"' in text
    assert f'<option value="{group.id}" selected>' in text
    assert await messages(db) == {}
    location, _ = await console.post("/compose", {**fields, "var_code": "42"})
    assert location == "/messages"
    assert await messages(db) == {
        NUMBERS[0]: ("Hi Ann, code 42", 1),
        NUMBERS[1]: ("Hi Bob, code 42", 1),
    }
    # To numbers from a template; one is refused, the other sent, and the page says which.
    location, _ = await console.post(
        "/compose", {"to": f"{NUMBERS[2]}, 12ab", "template": str(template.id),
                     "var_name": "you", "var_code": "7", "target": "pool:all"},
    )  # fmt: skip
    page = await console.page(location)
    assert "1 recipient(s) refused (12ab:" in page
    _, text = await console.post(
        "/compose", {**fields, "to": NUMBERS[3], "var_code": "1"}, status=400
    )
    assert "not both" in text
    _, text = await console.post("/compose", {**fields, "group": "999"}, status=400)
    assert "Group not found" in text


async def test_every_new_post_needs_the_csrf_token(console: Console) -> None:
    n = native(console)
    group = await n.groups.create(me(console), "club")
    template = await n.templates.create(me(console), "t", "x")
    for path in ("/templates", f"/templates/{template.id}", f"/templates/{template.id}/delete",
                 "/groups", f"/groups/{group.id}", f"/groups/{group.id}/delete",
                 f"/groups/{group.id}/contacts", f"/groups/{group.id}/import",
                 "/campaigns", "/compose/template-fields"):  # fmt: skip
        _, text = await console.post(
            path, {"name": "new", "body": "y", "phone": NUMBERS[0], "csrf": "forged"},
            csrf=False, status=403,
        )  # fmt: skip
        assert "security token" in text
    assert [(t.name, t.body) for t in await n.templates.list(me(console))] == [("t", "x")]
    assert [(g.name, g.contacts) for g in await n.groups.all(me(console))] == [("club", 0)]
    for path in ("/templates", "/groups", "/campaigns", f"/groups/{group.id}",
                 f"/templates/{template.id}"):  # fmt: skip
        assert "Log out" in await console.page(path)
