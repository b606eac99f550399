"""The console in a real headless Chromium against a real server, agent and emulator.

The tests run in file order and share one browser and one gateway (conftest.py); each logs in
again when it needs to. Screenshots go to $SIMHIVE_SCREENSHOTS or the session's temporary dir.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.console.conftest import PHONE, ConsoleStack, login, post_form, shot, wait
from tests.support.procs import console_script
from tests.support.stack import wait_until

pytestmark = pytest.mark.integration
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def count_messages(stack: ConsoleStack) -> int:
    with closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


def device_exists(stack: ConsoleStack, device_id: int) -> bool:
    with closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        return db.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is not None


def card_texts(driver: WebDriver) -> list[str]:
    """The device cards' texts, read in one step: the live overview may swap them any time."""
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('section.device')].map(e => e.innerText)"
    )
    return texts


def sim_rows(driver: WebDriver) -> dict[str, list[dict[str, str | None]]]:
    """Each device card's SIM rows (text, operator, signal label), read in one step."""
    rows: dict[str, list[dict[str, str | None]]] = driver.execute_script(
        "const out = {};"
        "for (const card of document.querySelectorAll('section.device')) {"
        "  out[card.dataset.device] = [...card.querySelectorAll('.sim')].map(s => ({"
        "    text: s.innerText,"
        "    operator: s.querySelector('.operator')?.innerText ?? null,"
        "    bars: s.querySelector('.bars')?.getAttribute('aria-label') ?? null}));"
        "}"
        "return out;"
    )
    return rows


def sims_registered(
    driver: WebDriver, stack: ConsoleStack
) -> dict[str, list[dict[str, str | None]]] | None:
    rows = sim_rows(driver)
    ready = all(
        len(rows.get(str(d.device_id), [])) == 2
        and all("registered" in (s["text"] or "") for s in rows[str(d.device_id)])
        for d in stack.devices
    )
    return rows if ready else None


def test_login_shows_both_devices_online_with_sim_info(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    browser.get(stack.url + "/")
    assert "/login" in browser.current_url  # no session: the overview asks for a login first
    shot(browser, shots, "login", PHONE)
    login(browser, stack)
    assert browser.current_url.rstrip("/") == stack.url

    def both_online(d: WebDriver) -> bool:
        cards = card_texts(d)
        return len(cards) == 2 and all("Online" in c for c in cards)

    wait(browser).until(both_online)
    # Read in one step and retried: the live overview swaps the cards (a stale element
    # otherwise), and a SIM may show "searching" for a moment before its first report.
    sims = wait(browser).until(lambda d: sims_registered(d, stack))
    assert sims is not None  # until() returns the first truthy answer
    for device in stack.devices:
        rows = sims[str(device.device_id)]
        assert len(rows) == 2
        for slot, sim in enumerate(rows):
            assert sim["operator"] and sim["operator"] != "—"
            assert device.number(slot) in (sim["text"] or "")
            assert "registered" in (sim["text"] or "")
            assert re.match(r"Signal [1-4] of 4 \(-\d+ dBm\)", sim["bars"] or "")
    shot(browser, shots, "overview")
    shot(browser, shots, "overview-phone", PHONE)


def test_compose_turns_delivered_without_reload(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    login(browser, stack)
    browser.get(stack.url + "/compose")
    sender, receiver = stack.devices
    browser.find_element(By.ID, "to").send_keys(receiver.number(1))
    body = browser.find_element(By.ID, "body")
    body.send_keys("Hello from the console [test] €")
    # The counter is the server's answer, swapped in while typing (htmx), without a submit.
    counter = browser.find_element(By.ID, "counter")
    wait(browser).until(lambda d: "31 characters" in counter.text)
    assert "GSM-7" in counter.text and "1 part" in counter.text
    body.send_keys(" привет")
    wait(browser).until(lambda d: "UCS-2" in counter.text)
    assert "38 characters" in counter.text
    Select(browser.find_element(By.ID, "target")).select_by_value(f"sim:{sender.device_id}:0")
    shot(browser, shots, "compose")
    browser.find_element(By.CSS_SELECTOR, "#compose button[type=submit]").click()
    wait(browser).until(lambda d: re.search(r"/messages/\d+$", d.current_url))
    sms_id = int(browser.current_url.rsplit("/", 1)[1])
    # A marker in the page's own JavaScript state: a reload would lose it.
    browser.execute_script("window.simhiveMarker = 'still here'")
    wait(browser, 60).until(lambda d: d.find_element(By.ID, "status-label").text == "Delivered")
    assert browser.execute_script("return window.simhiveMarker") == "still here"
    assert stack.status(sms_id) == 7
    assert "Sent ·" in browser.find_element(By.ID, "status").text  # the timeline has the send
    shot(browser, shots, "message-delivered")


def test_sms_to_an_emulated_number_appears_in_the_inbox(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    login(browser, stack)
    device = stack.devices[0]
    stack.emu.send_sms("+491701234567", device.number(0), "Is the console up?")

    def listed() -> bool:
        browser.get(stack.url + "/inbox")
        return "Is the console up?" in browser.find_element(By.ID, "conversations").text

    wait_until(listed, 60, "the incoming SMS in the inbox", interval=0.5)
    shot(browser, shots, "inbox")
    browser.find_element(By.LINK_TEXT, "+491701234567").click()
    assert "Is the console up?" in browser.find_element(By.CSS_SELECTOR, ".bubble.in").text
    browser.find_element(By.ID, "body").send_keys("Yes, it is.")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(lambda d: "Reply accepted" in d.page_source)
    assert "Yes, it is." in browser.find_element(By.CSS_SELECTOR, ".bubble.out").text
    shot(browser, shots, "conversation", PHONE)


def test_forms_without_csrf_token_or_with_a_stale_session_are_refused(
    browser: WebDriver, stack: ConsoleStack
) -> None:
    login(browser, stack)
    before = count_messages(stack)
    browser.get(stack.url + "/compose")
    browser.find_element(By.ID, "to").send_keys(stack.devices[1].number(0))
    browser.find_element(By.ID, "body").send_keys("no token")
    browser.execute_script("document.querySelector('#compose input[name=csrf]').remove()")
    browser.find_element(By.CSS_SELECTOR, "#compose button[type=submit]").click()
    wait(browser).until(lambda d: "Request refused" in d.page_source)
    assert "security token" in browser.find_element(By.CSS_SELECTOR, ".flash.error").text

    # A stale session: the form was loaded, then the session ended (logged out elsewhere).
    browser.get(stack.url + "/compose")
    browser.find_element(By.ID, "to").send_keys(stack.devices[1].number(0))
    browser.find_element(By.ID, "body").send_keys("stale session")
    cookie = browser.get_cookie("simhive_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    csrf = browser.find_element(By.CSS_SELECTOR, "#compose input[name=csrf]").get_attribute("value")
    assert csrf
    status, _ = post_form(
        stack.url + "/logout", {"csrf": csrf}, f"simhive_session={cookie['value']}"
    )
    assert status == 200  # the redirect to the login page, followed
    browser.find_element(By.CSS_SELECTOR, "#compose button[type=submit]").click()
    wait(browser).until(lambda d: "Request refused" in d.page_source)
    assert "session has ended" in browser.find_element(By.CSS_SELECTOR, ".flash.error").text
    assert count_messages(stack) == before  # neither form stored anything
    # The same stale cookie, replayed with the right token, is refused too.
    status, body = post_form(
        stack.url + "/compose",
        {"csrf": csrf, "to": "+4915112345678", "body": "x", "target": "pool:all"},
        f"simhive_session={cookie['value']}",
    )
    assert status == 403 and "session has ended" in body
    assert count_messages(stack) == before


def test_add_a_device_and_run_the_agent_set_up_the_page_shows(
    browser: WebDriver, stack: ConsoleStack, shots: Path, tmp_path: Path
) -> None:
    login(browser, stack)
    browser.get(stack.url + "/devices")
    browser.find_element(By.NAME, "title").send_keys("garage")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(lambda d: "Device garage added" in d.page_source)
    shot(browser, shots, "device-added")
    enroll = shlex.split(browser.find_element(By.ID, "enroll-command").text)
    commands = browser.find_element(By.ID, "agent-command").text.splitlines()
    # The API's own command; what the user adds: the modem's ports and profile, and paths.
    assert enroll[:3] == ["simhive-agent", "enroll", stack.url]
    modem = stack.spare_modem
    path = tmp_path / "agent.toml"
    extra = ["--config", str(path), "--profile", modem["profile"],
             "--journal", str(tmp_path / "j.sqlite3")]  # fmt: skip
    for sim in modem["sims"]:
        extra += ["--port", sim["link"]]
    out = subprocess.run([console_script("simhive-agent"), *enroll[1:], *extra],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    check, run = (line.replace("/etc/simhive/agent.toml", str(path)) for line in commands)
    assert check.startswith("simhive-agent check-config ")
    out = subprocess.run(
        [console_script("simhive-agent"), *check.split()[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert run.startswith("simhive-agent run ")
    agent = subprocess.Popen(
        [console_script("simhive-agent"), *run.split()[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        browser.get(stack.url + "/")

        def garage_online(d: WebDriver) -> bool:
            cards = [c for c in card_texts(d) if "garage" in c]
            return bool(cards) and "Online" in cards[0] and "registered" in cards[0]

        # The overview updates itself (SSE): no reload in this wait.
        wait(browser, 60).until(garage_online)
        shot(browser, shots, "overview-three-devices")
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def balance(stack: ConsoleStack, key: str) -> requests.Response:
    return requests.get(stack.url + "/api/v1/balance", timeout=30,
                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_revoke_an_api_key_and_see_it_refused(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    login(browser, stack)
    browser.get(stack.url + "/keys")
    browser.find_element(By.ID, "key-name").send_keys("revoke me")
    browser.find_element(By.CSS_SELECTOR, "input[name=scopes][value=read]").click()
    browser.find_element(By.CSS_SELECTOR, "#new-key button[type=submit]").click()
    wait(browser).until(lambda d: "Key revoke me created" in d.page_source)
    shot(browser, shots, "key-created")
    key = browser.find_element(By.ID, "key-secret").get_attribute("value")
    assert key and key.startswith("shk_")
    assert balance(stack, key).status_code == 200
    browser.get(stack.url + "/keys")
    assert key not in browser.page_source  # shown once only
    row = browser.find_element(By.XPATH, "//table[@id='keys']//tr[td[1]='revoke me']")
    assert "send, read" in row.text and "Revoked" not in row.text
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait(browser).until(lambda d: "the API refuses it from now on" in d.page_source)
    row = browser.find_element(By.XPATH, "//table[@id='keys']//tr[td[1]='revoke me']")
    assert "Revoked" in row.text
    shot(browser, shots, "keys")
    refused = balance(stack, key)
    assert refused.status_code == 401
    assert set(refused.json()) == {"error"}
    assert refused.json()["error"]["code"] == "invalid_credential"
    assert "revoked" in refused.json()["error"]["message"]


def code_on_the_air(stack: ConsoleStack, number: str, words: str) -> str:
    """The 6-digit code of the latest SMS the emulated network carried to `number`."""

    def find() -> str | None:
        texts = [s["text"] for s in stack.submitted() if s["to"] == number and words in s["text"]]
        found = re.search(r"simhive code (\d{6}) ", texts[-1]) if texts else None
        return found.group(1) if found else None

    code = wait_until(find, 60, f"the SMS with the code to {words}", interval=0.3)
    return str(code)


def test_delete_a_device_with_the_code_sent_by_sms(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    owner = stack.devices[1].number(0)  # an emulated number stands for the owner's phone
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "phone",
                        "--scope", "admin")["key"])  # fmt: skip
    auth = {"Authorization": f"Bearer {key}"}
    made = requests.put(stack.url + "/api/v1/account/phone", json={"number": owner},
                        headers=auth, timeout=30)  # fmt: skip
    assert made.status_code == 200, made.text
    code = code_on_the_air(stack, owner, "verify this number")
    done = requests.post(stack.url + "/api/v1/account/phone/verify", json={"code": code},
                         headers=auth, timeout=30)  # fmt: skip
    assert done.status_code == 200 and done.json()["verified"], done.text
    doomed = int(stack.cli("device", "create", "--email", stack.email, "--title", "doomed")
                 ["device_id"])  # fmt: skip
    login(browser, stack)
    browser.get(f"{stack.url}/devices/{doomed}")
    browser.find_element(By.ID, "send-code").click()
    wait(browser).until(lambda d: "A code was sent by SMS" in d.page_source)
    assert browser.current_url == f"{stack.url}/devices/{doomed}/delete"
    code = code_on_the_air(stack, owner, f"delete device {doomed}")
    wrong = "000000" if code != "000000" else "111111"
    browser.find_element(By.ID, "otp").send_keys(wrong)
    browser.find_element(By.CSS_SELECTOR, "#delete-device button[type=submit]").click()
    wait(browser).until(lambda d: "Wrong code (4 tries left)" in d.page_source)
    assert device_exists(stack, doomed)
    shot(browser, shots, "device-delete")
    browser.find_element(By.ID, "otp").send_keys(code)
    browser.find_element(By.CSS_SELECTOR, "#delete-device button[type=submit]").click()
    wait(browser).until(lambda d: "Device doomed deleted" in d.page_source)
    assert browser.current_url == f"{stack.url}/devices"
    assert not device_exists(stack, doomed)
    browser.get(f"{stack.url}/devices/{doomed}")
    assert "Device not found" in browser.page_source


def test_send_to_a_group_from_a_template_made_in_the_console(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    login(browser, stack)
    sender, receiver = stack.devices
    browser.get(stack.url + "/templates")
    browser.find_element(By.ID, "name").send_keys("welcome")
    browser.find_element(By.ID, "body").send_keys("Hello {name}, your code is {code}")
    browser.find_element(By.CSS_SELECTOR, "#template-form button[type=submit]").click()
    wait(browser).until(lambda d: "Template welcome created" in d.page_source)
    shot(browser, shots, "templates")
    browser.get(stack.url + "/groups")
    browser.find_element(By.NAME, "name").send_keys("friends")
    browser.find_element(By.CSS_SELECTOR, "#group-form button[type=submit]").click()
    wait(browser).until(lambda d: re.search(r"/groups/\d+$", d.current_url))
    for slot, name in ((0, "Ann"), (1, "Bob")):
        browser.find_element(By.NAME, "phone").send_keys(receiver.number(slot))
        browser.find_element(By.NAME, "contact_name").send_keys(name)
        browser.find_element(By.CSS_SELECTOR, "#contact-form button[type=submit]").click()
        note = f"{receiver.number(slot)} added"
        wait(browser).until(lambda d: note in d.page_source)  # noqa: B023 (used at once)
    shot(browser, shots, "group")

    browser.get(stack.url + "/compose")
    Select(browser.find_element(By.ID, "group")).select_by_visible_text("friends (2 contacts)")
    Select(browser.find_element(By.ID, "template")).select_by_visible_text("welcome")
    # The template's fields, swapped in by htmx when it was chosen.
    wait(browser).until(lambda d: d.find_elements(By.ID, "var_code"))
    assert browser.find_element(By.ID, "var_name").get_attribute("value") == ""
    Select(browser.find_element(By.ID, "target")).select_by_value(f"sim:{sender.device_id}:0")
    before = count_messages(stack)
    # {code} left empty: the template mismatch, in the form, and nothing stored.
    browser.find_element(By.CSS_SELECTOR, "#compose button[type=submit]").click()
    wait(browser).until(lambda d: "No value for {code}" in d.page_source)
    assert count_messages(stack) == before
    browser.find_element(By.ID, "var_code").send_keys("4711")
    shot(browser, shots, "compose-template")
    browser.find_element(By.CSS_SELECTOR, "#compose button[type=submit]").click()
    wait(browser).until(lambda d: d.current_url.endswith("/messages"))
    assert "2 messages accepted" in browser.page_source
    texts = {
        f"Hello {n}, your code is 4711": receiver.number(s) for s, n in ((0, "Ann"), (1, "Bob"))
    }

    def both_delivered() -> bool:
        browser.get(stack.url + "/messages")
        rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-id]")
        seen = {
            r.find_element(By.CSS_SELECTOR, "td[data-label=Text]").text: (
                r.find_element(By.CSS_SELECTOR, "td[data-label=Number]").text,
                r.find_element(By.CSS_SELECTOR, "td[data-label=Status]").text,
            )
            for r in rows
        }
        return all(seen.get(t) == (number, "Delivered") for t, number in texts.items())

    wait_until(both_delivered, 60, "both filled texts delivered", interval=0.5)
    shot(browser, shots, "messages-from-template")


PAGES = [
    "/", "/messages", "/compose", "/inbox", "/devices", "/pools", "/webhooks", "/traffic",
    "/templates", "/groups", "/campaigns", "/keys", "/account",
]  # fmt: skip


def made_in_the_console(driver: WebDriver, stack: ConsoleStack) -> list[str]:
    """A group, a template and a scheduled campaign made through their forms: their pages (and
    the campaigns list's rows and buttons) are checked too."""
    driver.get(stack.url + "/groups")
    driver.find_element(By.NAME, "name").send_keys("axe group")
    driver.find_element(By.CSS_SELECTOR, "#group-form button[type=submit]").click()
    wait(driver).until(lambda d: re.search(r"/groups/\d+$", d.current_url))
    group = driver.current_url.removeprefix(stack.url)
    driver.find_element(By.NAME, "phone").send_keys("+4915112345678")
    driver.find_element(By.CSS_SELECTOR, "#contact-form button[type=submit]").click()
    wait(driver).until(lambda d: "+4915112345678 added" in d.page_source)
    driver.get(stack.url + "/templates")
    driver.find_element(By.ID, "name").send_keys("axe template")
    driver.find_element(By.ID, "body").send_keys("Hi {name}")
    driver.find_element(By.CSS_SELECTOR, "#template-form button[type=submit]").click()
    link = wait(driver).until(lambda d: d.find_element(By.LINK_TEXT, "axe template"))
    template = str(link.get_attribute("href")).removeprefix(stack.url)
    driver.get(stack.url + "/campaigns")
    driver.find_element(By.ID, "name").send_keys("axe campaign")
    driver.find_element(By.CSS_SELECTOR, "#campaign-form input[name=group]").click()
    driver.find_element(By.ID, "body").send_keys("Scheduled")
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    driver.execute_script("document.getElementById('at').value = arguments[0]", tomorrow)
    driver.find_element(By.CSS_SELECTOR, "#campaign-form button[type=submit]").click()
    wait(driver).until(lambda d: "Campaign axe campaign created" in d.page_source)
    return [group, template]


def axe_serious(driver: WebDriver) -> list[str]:
    """axe-core's serious and critical findings on the current page (axe injected by the test)."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v.get("impact") in ("serious", "critical")
    ]


def test_every_page_passes_axe_without_serious_issues(
    browser: WebDriver, stack: ConsoleStack, shots: Path
) -> None:
    login(browser, stack)
    browser.set_script_timeout(60)
    # Pages with ids: a message, a conversation, a device.
    sms_id = stack.addsms(stack.devices[0], stack.devices[1].number(0), "for the detail page")
    pages = [
        *PAGES,
        *made_in_the_console(browser, stack),
        f"/messages/{sms_id}",
        f"/devices/{stack.devices[0].device_id}",
        f"/devices/{stack.devices[0].device_id}/delete",
        "/inbox/%2B491701234567",
    ]
    found: dict[str, list[str]] = {}
    for page in pages:
        browser.get(stack.url + page)
        assert "Request refused" not in browser.page_source, page
        issues = axe_serious(browser)
        if issues:
            found[page] = issues
        name = page.strip("/").replace("/", "-").replace("%2B", "") or "overview"
        if page in ("/messages", "/pools", "/webhooks", "/traffic", "/devices", "/campaigns"):
            shot(browser, shots, name)
    # Logged out: the login page.
    browser.delete_all_cookies()
    browser.get(stack.url + "/login")
    if issues := axe_serious(browser):
        found["/login"] = issues
    assert not found, found
    # The check itself finds what it should: an image without a text alternative is critical.
    browser.execute_script(
        "const i = document.createElement('img'); i.src = '/static/none.png';"
        "document.querySelector('main').appendChild(i);"
    )
    assert any(issue.startswith("image-alt") for issue in axe_serious(browser))
