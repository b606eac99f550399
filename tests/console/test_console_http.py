"""The console over HTTP, in process: login and sessions, CSRF, every page's forms and their effect
in the store, bad input answered as a page (never a 500), and the path prefix."""

from __future__ import annotations

import asyncio
import inspect
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.background import BACKGROUND
from simhive.server.console import ConsoleSettings
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.models import Account, Device, IncomingMessage
from simhive.server.core.security import hash_token
from tests.support.testdb import AppDb

PASSWORD = "console-password-1"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    client: TestClient[Any, Any]
    gw: Gateway
    account: Account
    device: Device
    prefix: str = ""

    async def page(self, path: str, status: int = 200) -> str:
        response = await self.client.get(self.prefix + path, allow_redirects=False)
        text = await response.text()
        assert response.status == status, (path, response.status, text[:500])
        return text

    async def csrf(self, path: str = "/") -> str:
        match = CSRF.search(await self.page(path))
        assert match is not None
        return match.group(1)

    async def post(
        self, path: str, fields: dict[str, str], *, csrf: bool = True, status: int = 303
    ) -> tuple[str, str]:
        """POST a form (with the session's CSRF token); (Location or '', body)."""
        data = dict(fields)
        if csrf:
            data["csrf"] = await self.csrf()
        response = await self.client.post(self.prefix + path, data=data, allow_redirects=False)
        text = await response.text()
        assert response.status == status, (path, response.status, text[:800])
        return response.headers.get("Location", ""), text

    async def login(
        self, email: str | None = None, password: str = PASSWORD
    ) -> aiohttp.ClientResponse:
        form = await self.client.get(self.prefix + "/login")
        match = CSRF.search(await form.text())
        assert match is not None
        response = await self.client.post(
            self.prefix + "/login",
            data={
                "csrf": match.group(1),
                "email": email or self.account.email,
                "password": password,
            },
            allow_redirects=False,
        )
        return response


async def make_console(db: AppDb, prefix: str = "") -> AsyncIterator[Console]:
    app = create_app(db.store(), console_settings=ConsoleSettings(prefix=prefix))
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, _ = await gw.create_account("op@example.com", PASSWORD)
        device, _ = await gw.create_device(account, "hall")
        yield Console(client, gw, account, device, prefix)


@pytest.fixture
async def console(db: AppDb) -> AsyncIterator[Console]:
    async for c in make_console(db):
        response = await c.login()
        assert response.status == 303
        yield c


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(db: AppDb) -> None:
    async for c in make_console(db):
        assert (
            (await c.client.get("/", allow_redirects=False))
            .headers["Location"]
            .startswith("/login")
        )
        response = await c.login()
        assert response.status == 303 and response.headers["Location"] == "/"
        cookie = response.cookies["simhive_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        assert "Overview" in await c.page("/")
        stolen = cookie.value
        location, _ = await c.post("/logout", {})
        assert location == "/login"
        assert (await c.client.get("/", allow_redirects=False)).status == 303
        # The ended session's cookie, sent again, is refused.
        c.client.session.cookie_jar.update_cookies({"simhive_session": stolen})
        _, text = await c.post(
            "/compose", {"csrf": "x", "to": "1", "body": "x"}, csrf=False, status=403
        )
        assert "session has ended" in text


async def test_a_wrong_password_and_the_login_throttle(db: AppDb) -> None:
    async for c in make_console(db):
        bad = await c.login(password="wrong-password")
        assert bad.status == 401 and "Login or password incorrect" in await bad.text()
        for _ in range(9):
            assert (await c.login(password="wrong-password")).status == 401
        # Ten failures for this email from this address: locked, even with the right password.
        locked = await c.login()
        assert locked.status == 401 and "Too many failed logins" in await locked.text()


async def test_login_form_needs_its_csrf_value_and_next_stays_on_this_site(db: AppDb) -> None:
    async for c in make_console(db):
        no_token = await c.client.post(
            "/login", data={"email": c.account.email, "password": PASSWORD}
        )
        assert no_token.status == 403
        form = await c.client.get("/login?next=//evil.example/x")
        match = CSRF.search(await form.text())
        assert match is not None
        response = await c.client.post(
            "/login?next=//evil.example/x",
            data={"csrf": match.group(1), "email": c.account.email, "password": PASSWORD},
            allow_redirects=False,
        )
        assert response.status == 303 and response.headers["Location"] == "/"


async def test_every_page_answers_and_posts_need_the_csrf_token(console: Console) -> None:
    for path in (
        "/",
        "/messages",
        "/compose",
        "/inbox",
        "/devices",
        f"/devices/{console.device.id}",
        "/pools",
        "/webhooks",
        "/traffic",
    ):
        text = await console.page(path)
        assert "Log out" in text
    _, text = await console.post("/devices", {"title": "x"}, csrf=False, status=403)
    assert "security token" in text
    _, text = await console.post(
        "/devices", {"title": "x", "csrf": "forged"}, csrf=False, status=403
    )
    assert len(await console.gw.store.list_devices(console.account.id)) == 1


async def test_bad_input_is_answered_as_a_page(console: Console) -> None:
    assert "expected a date" in await console.page("/messages?from=yesterday", 400)
    assert "Unknown status filter" in await console.page("/messages?status=bogus", 400)
    assert "Sms not found" in await console.page("/messages/abc", 404)
    assert "Sms not found" in await console.page("/messages/99999", 404)
    assert "Device not found" in await console.page("/devices/424242", 404)
    assert "No conversation" in await console.page("/inbox/%2B4900000", 404)
    _, text = await console.post(
        "/compose", {"to": "+4915112345678", "body": "hi", "target": "nonsense"}, status=400
    )
    assert "Choose where to send from" in text and "+4915112345678" in text  # input kept
    _, text = await console.post(
        "/compose", {"to": "not a number", "body": "hi", "target": "pool:all"}, status=400
    )
    assert 'class="flash error"' in text


async def test_compose_cancel_and_resend(console: Console, db: AppDb) -> None:
    target = f"sim:{console.device.id}:1"
    location, _ = await console.post(
        "/compose", {"to": "+4915112345678", "body": "first", "target": target}
    )
    sms_id = int(location.rsplit("/", 1)[1])
    assert "Message" in await console.page(f"/messages/{sms_id}")
    location, _ = await console.post(f"/messages/{sms_id}/cancel", {})
    assert location == f"/messages/{sms_id}"
    status, code, sim = await db.row(
        "SELECT status, failure_code, sim FROM messages WHERE id = ?",
        sms_id,
    )
    assert (status, code, sim) == (9, "cancelled", 1)
    _, text = await console.post(f"/messages/{sms_id}/cancel", {}, status=400)
    assert "still new" in text
    location, _ = await console.post(f"/messages/{sms_id}/resend", {})
    new_id = int(location.rsplit("/", 1)[1])
    assert new_id > sms_id
    assert await db.row(
        "SELECT status, body, device_id, sim, sendto FROM messages WHERE id = ?",
        new_id,
    ) == (1, "first", console.device.id, 1, "+4915112345678")
    _, text = await console.post(f"/messages/{new_id}/resend", {}, status=400)
    assert "failed" in text
    # Several numbers at once, scheduled: a list of new messages, due later.
    location, _ = await console.post(
        "/compose",
        {
            "to": "+4915112345670\n+4915112345671",
            "body": "two",
            "target": "pool:all",
            "at": "2099-01-02T03:04",
        },
    )
    assert location == "/messages"
    listed = await console.page("/messages?number=4915112345671")
    assert listed.count('data-id="') == 1
    assert await db.row(
        "SELECT COUNT(*) FROM messages WHERE timetosend IS NOT NULL AND body = 'two'",
    ) == (2,)


async def test_message_list_filters(console: Console) -> None:
    gw = console.gw
    for i in range(3):
        await gw.send(
            console.account,
            Outgoing(
                f"+49151123456{i:02d}", f"text {i} needle" if i else "other", console.device.id
            ),
        )
    page = await console.page("/messages?q=needle")
    assert page.count('data-id="') == 2
    assert (await console.page("/messages?status=waiting")).count('data-id="') == 3
    assert (await console.page("/messages?status=delivered")).count('data-id="') == 0
    assert (await console.page(f"/messages?device={console.device.id}")).count('data-id="') == 3
    assert (await console.page("/messages?q=50%25")).count('data-id="') == 0  # % is literal
    assert (await console.page("/messages?from=2000-01-01&to=2000-01-02")).count('data-id="') == 0


async def test_inbox_groups_by_number_and_replies_through_the_receiving_sim(
    console: Console, db: AppDb
) -> None:
    store = console.gw.store
    now = console.gw.clock()
    await store.store_incoming(
        console.account.id,
        console.device.id,
        [
            IncomingMessage("k1", 1, "+491701111111", "first from A"),
            IncomingMessage("k2", 0, "+491702222222", "from B"),
            IncomingMessage("k3", 1, "+491701111111", "second from A"),
        ],
        now,
    )
    inbox = await console.page("/inbox")
    assert inbox.count("+491701111111</a>") == 1 and "second from A" in inbox
    thread = await console.page("/inbox/%2B491701111111")
    assert thread.index("first from A") < thread.index("second from A")
    location, _ = await console.post("/inbox/%2B491701111111", {"body": "answer"})
    assert location == "/inbox/+491701111111"
    assert await db.row("SELECT device_id, sim, sendto FROM messages WHERE body = 'answer'") == (
        console.device.id,
        1,
        "+491701111111",
    )


async def test_pools_are_managed_through_routing(console: Console) -> None:
    d = console.device.id
    await console.post("/pools", {"name": "bulk", "strategy": "full"})
    await console.post("/pools/bulk/add-sim", {"sim": f"{d}:1", "weight": "3"})
    await console.post("/pools/bulk", {"strategy": "least-loaded", "sticky": "on"})
    info = await console.gw.routing.info(console.account, "bulk")
    assert (info.pool.strategy, info.pool.sticky) == ("least-loaded", True)
    assert [(s.device_id, s.slot, s.weight) for s in info.sims] == [(d, 1, 3)]
    assert "bulk" in await console.page("/pools")
    _, text = await console.post("/pools/bulk/add-sim", {"sim": f"{d}:7"}, status=400)
    assert "Unsupported sim" in text
    await console.post("/pools/bulk/remove-sim", {"sim": f"{d}:1"})
    await console.post("/pools/bulk/delete", {})
    assert [
        p.name for p in await console.gw.routing.list(console.account) if p.kind == "named"
    ] == []


async def test_device_add_and_settings(console: Console) -> None:
    _, text = await console.post("/devices", {"title": "garage"}, status=200)
    # The page shows the API's enrollment command; its code, swapped once, gives the token.
    pattern = r'<pre id="enroll-command">simhive-agent enroll (\S+) ([A-Z0-9-]{19})</pre>'
    command = re.search(pattern, text)
    assert command is not None and command.group(1) == str(console.client.make_url("/"))[:-1]
    redeemed = await console.client.post("/agent/v1/enroll", json={"code": command.group(2)})
    assert redeemed.status == 200
    token = (await redeemed.json())["token"]
    assert token not in text  # the token itself is never on the page
    device = await console.gw.store.device_by_token_hash(hash_token(token))
    assert device is not None and device.title == "garage"
    again = await console.client.post("/agent/v1/enroll", json={"code": command.group(2)})
    assert again.status == 401  # single use
    fields = {
        "sim_min_interval": "5",
        "sim_per_minute": "",
        "sim_per_hour": "60",
        "sim_per_day": "300",
        "delaybetweeneachsms": "",
        "delaybetweenrequest": "20",
        "webhook_status": "http://127.0.0.1:9/status",
        "webhook_incoming": "",
    }
    await console.post(f"/devices/{device.id}", fields)
    settings = await console.gw.store.device_agent_settings(device.id)
    assert settings is not None
    assert (
        settings.sim_min_interval,
        settings.sim_per_minute,
        settings.sim_per_hour,
        settings.sim_per_day,
        settings.delaybetweenrequest,
    ) == (5, None, 60, 300, 20)
    assert settings.webhook_status == "http://127.0.0.1:9/status" and settings.webhook_secret
    page = await console.page(f"/devices/{device.id}")
    assert "Webhook signing secret (shown once)" in page and settings.webhook_secret in page
    assert settings.webhook_secret not in await console.page(f"/devices/{device.id}")
    _, text = await console.post(
        f"/devices/{device.id}", {**fields, "sim_per_hour": "-1"}, status=400
    )
    assert "between 0 and" in text
    _, text = await console.post(
        f"/devices/{device.id}", {**fields, "webhook_status": "ftp://x"}, status=400
    )
    assert "http://" in text


async def test_webhook_redeliver(db: AppDb) -> None:
    posts: list[bytes] = []
    hook = web.Application()

    async def receive(request: web.Request) -> web.Response:
        posts.append(await request.read())
        return web.Response(text="ok")

    hook.router.add_post("/hook", receive)
    async with TestServer(hook) as receiver:
        async for c in make_console(db):
            await c.gw.store.update_device_settings(
                c.device.id,
                {"webhook_status": str(receiver.make_url("/hook")), "webhook_secret": "s" * 32},
            )
            (sms_id,) = await c.gw.send(c.account, Outgoing("+4915112345678", "x", c.device.id))
            # The agent's report, as the store applies it: the message is sent (the outbox
            # trigger queues the webhook).
            now = c.gw.clock()
            await db.rows(
                "UPDATE messages SET status = 6, senttime = ?, status_changed = ? WHERE id = ?",
                now, now, sms_id,
            )  # fmt: skip
            sender = c.client.app[BACKGROUND].sender
            assert sender is not None
            sender.wake()
            await wait_for(lambda: len(posts) == 1)
            assert (await c.login()).status == 303
            await wait_for(lambda: delivered(db))
            page = await c.page("/webhooks?state=delivered")
            (row_id,) = re.findall(r'<tr data-id="(\d+)">', page)
            await c.post(f"/webhooks/{row_id}/redeliver", {})
            await wait_for(lambda: len(posts) == 2)
            assert posts[0] == posts[1] or b'"sms_id"' in posts[1]
            await wait_for(lambda: delivered(db))
            _, text = await c.post("/webhooks/424242/redeliver", {}, status=400)
            assert "Only a delivered or dead webhook" in text


async def delivered(db: AppDb) -> bool:
    return await db.rows("SELECT state FROM webhook_outbox") == [("delivered",)]


async def wait_for(probe: Any) -> None:
    """Until probe() (or what it awaits) is true: the receiver's POSTs and the sender's writes
    come by themselves."""
    async with asyncio.timeout(20):
        while True:
            done = probe()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return
            await asyncio.sleep(0.05)


async def test_the_console_under_a_path_prefix(db: AppDb) -> None:
    async for c in make_console(db, prefix="/sms"):
        home = await c.client.get("/sms", allow_redirects=False)
        assert home.status == 301 and home.headers["Location"] == "/sms/"
        root = await c.client.get("/", allow_redirects=False)
        assert root.status == 404  # nothing of the console outside its prefix
        response = await c.login()
        assert response.status == 303 and response.headers["Location"] == "/sms/"
        assert response.cookies["simhive_session"]["path"] == "/sms"
        page = await c.page("/")
        assert 'href="/sms/messages"' in page and 'src="/sms/static/htmx.min.js"' in page
        script = await c.client.get("/sms/static/htmx.min.js")
        assert script.status == 200 and len(await script.read()) > 10_000


async def test_request_metrics_key_by_route_template(console: Console) -> None:
    for sms_id in (1, 2, 3):
        await console.client.get(f"/messages/{sms_id}")
    text = await (await console.client.get("/metrics")).text()
    assert (
        'simhive_http_requests_total{method="GET",route="/messages/{sms_id}",status="404"} 3.0'
    ) in text


async def test_the_session_cookie_is_secure_behind_a_local_tls_proxy(db: AppDb) -> None:
    async for c in make_console(db):
        form = await c.client.get("/login", headers={"X-Forwarded-Proto": "https"})
        login_cookie = form.cookies["simhive_login"]
        assert login_cookie["secure"]
        match = CSRF.search(await form.text())
        assert match is not None
        # The client holds a Secure cookie back over plain HTTP; the proxy's browser sends it.
        response = await c.client.post(
            "/login",
            headers={"X-Forwarded-Proto": "https", "Cookie": f"simhive_login={login_cookie.value}"},
            data={"csrf": match.group(1), "email": c.account.email, "password": PASSWORD},
            allow_redirects=False,
        )
        assert response.status == 303 and response.cookies["simhive_session"]["secure"]


async def test_the_session_cookie_is_secure_under_tls(tmp_path: Path, db: AppDb) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await made.wait() == 0
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    app = create_app(db.store())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    try:
        gw = app[GATEWAY]
        await gw.create_account("tls@example.com", PASSWORD)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"https://127.0.0.1:{port}"
        client_tls = ssl.create_default_context(cafile=str(cert))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            form = await (await http.get(base + "/login", ssl=client_tls)).text()
            match = CSRF.search(form)
            assert match is not None
            response = await http.post(
                base + "/login", ssl=client_tls, allow_redirects=False,
                data={"csrf": match.group(1), "email": "tls@example.com", "password": PASSWORD},
            )  # fmt: skip
            assert response.status == 303
            cookie = response.cookies["simhive_session"]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
    finally:
        await runner.cleanup()
