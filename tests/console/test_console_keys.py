"""The console's API keys page and its OTP-confirmed device delete, over HTTP in process: each
form's effect through the native API's own core (a key made here works against /api/v1 and is
refused there once revoked; a device goes only with the right code), CSRF, other accounts'
records, and bad input answered as a page (never a 500)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest

from simhive.server.api.v1.http import NATIVE
from simhive.server.core.confirmed import Confirmed
from simhive.server.core.errors import AuthError
from simhive.server.core.keys import Caller
from simhive.server.core.models import MessageFilter
from simhive.server.core.otp import LOCK_SECONDS, MAX_TRIES, RESEND_SECONDS
from simhive.server.smpp.auth import KeyAuthenticator
from tests.console.test_console_http import PASSWORD, Console
from tests.console.test_console_http import console as console  # a fixture these tests use

US = 1_000_000
PHONE = "+4915752982290"
SECRET = re.compile(r'id="key-secret" value="(shk_[0-9a-f]{32})"')
SMPP_PASSWORD = re.compile(r'id="smpp-password" value="([A-Za-z0-9]{8})"')
CODE = re.compile(r"simhive code (\d{6}) ")


async def api(c: Console, secret: str, path: str = "/api/v1/balance") -> tuple[int, Any]:
    answer = await c.client.get(path, headers={"Authorization": f"Bearer {secret}"})
    return answer.status, await answer.json()


async def create_key(c: Console, name: str, scopes: list[str]) -> str:
    data: list[tuple[str, str]] = [("csrf", await c.csrf("/keys")), ("name", name)]
    data += [("scopes", s) for s in scopes]
    response = await c.client.post("/keys", data=data, allow_redirects=False)
    text = await response.text()
    assert response.status == 200, text[:800]
    found = SECRET.search(text)
    assert found is not None and "shown only this once" in text
    return found.group(1)


async def test_a_key_made_here_works_until_it_is_revoked_here(console: Console) -> None:
    secret = await create_key(console, "shop backend", ["read", "send"])
    status, body = await api(console, secret)
    assert status == 200 and "daily" in str(body)
    listed = await console.page("/keys")
    assert "shop backend" in listed and "send, read" in listed and secret not in listed
    assert secret[:10] in listed  # the key's first characters name it
    key = (await console.gw.store.list_api_keys(console.account.id))[0]
    assert key.scopes == ("send", "read") and key.revoked is None
    # Scopes hold in the API: this key may not list keys (that needs `admin`).
    status, body = await api(console, secret, "/api/v1/keys")
    assert status == 403 and body["error"]["code"] == "scope_denied"
    # Without the form's token, nothing is revoked.
    _, text = await console.post(f"/keys/{key.id}/revoke", {}, csrf=False, status=403)
    assert "security token" in text
    assert (await api(console, secret))[0] == 200
    location, _ = await console.post(f"/keys/{key.id}/revoke", {})
    assert location == "/keys"
    listed = await console.page("/keys")
    assert "revoked: the API refuses it" in listed and "Revoked" in listed
    status, body = await api(console, secret)  # at once: the API's own key cache forgot it
    assert status == 401
    assert body["error"]["code"] == "invalid_credential" and "revoked" in body["error"]["message"]
    _, text = await console.post(f"/keys/{key.id}/revoke", {}, status=404)  # revoked already
    assert "API key not found" in text


async def test_keys_of_another_account_are_not_revocable(console: Console) -> None:
    gw = console.gw
    other, _ = await gw.create_account("other@example.com", PASSWORD)
    native = console.client.app[NATIVE]
    theirs, secret = await native.create_key(Caller(other), "theirs", ["read"])
    assert theirs.prefix not in await console.page("/keys")  # not listed here either
    _, text = await console.post(f"/keys/{theirs.id}/revoke", {}, status=404)
    assert "API key not found" in text
    assert (await gw.store.list_api_keys(other.id))[0].revoked is None
    assert (await api(console, secret))[0] == 200


async def test_bad_key_input_is_answered_as_a_page(console: Console) -> None:
    for fields, words in (
        ([("name", "x")], "Invalid scopes"),
        ([("name", "x"), ("scopes", "root")], "Invalid scopes"),
        ([("name", "   "), ("scopes", "read")], "Invalid key name"),
        ([("name", "x" * 500), ("scopes", "read")], "Invalid key name"),
    ):
        data = [("csrf", await console.csrf("/keys")), *fields]
        response = await console.client.post("/keys", data=data, allow_redirects=False)
        text = await response.text()
        assert response.status == 400 and words in html.unescape(text), (fields, text[:500])
    for bad in ("abc", "-1", "9" * 30, "424242"):
        _, text = await console.post(f"/keys/{bad}/revoke", {}, status=404)
        assert "API key not found" in text
    assert await console.gw.store.list_api_keys(console.account.id) == []


# -- SMPP logins ---------------------------------------------------------------------------------


async def post_key(c: Console, fields: list[tuple[str, str]], status: int = 200) -> str:
    data = [("csrf", await c.csrf("/keys")), *fields]
    response = await c.client.post("/keys", data=data, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text[:800]
    return html.unescape(text)


async def bind(c: Console, system_id: str, password: str) -> tuple[int, str | None]:
    """Authenticate as an SMPP transmitter bind does: (the key's id, the pool of its submits)."""
    native = c.client.app[NATIVE]
    found = await KeyAuthenticator(c.gw, native.keys).authenticate(
        system_id, password, "127.0.0.1", ("send",)
    )
    return found.key.id, found.pool


async def test_a_key_made_with_an_smpp_login_binds_with_the_password_shown_once(
    console: Console,
) -> None:
    await console.post("/pools", {"name": "bulk", "strategy": "full"})
    form = await console.page("/keys")
    assert 'name="smpp"' in form and '<option value="bulk">bulk</option>' in form
    fields = [("name", "crm"), ("scopes", "send"), ("scopes", "read"), ("smpp", "1"),
              ("smpp_system_id", "crm1"), ("smpp_pool", "bulk")]  # fmt: skip
    # Without the form's token: no key, no login.
    response = await console.client.post("/keys", data=fields, allow_redirects=False)
    assert response.status == 403
    assert await console.gw.store.list_api_keys(console.account.id) == []
    text = await post_key(console, fields)
    found = SMPP_PASSWORD.search(text)
    assert found is not None and 'id="smpp-login">crm1<' in text and "pool bulk" in text
    password = found.group(1)
    [key] = await console.gw.store.list_api_keys(console.account.id)
    assert (key.smpp_system_id, key.smpp_pool) == ("crm1", "bulk")
    assert await bind(console, "crm1", password) == (key.id, "bulk")
    with pytest.raises(AuthError):
        await bind(console, "crm1", password[::-1] if password[::-1] != password else "x" * 8)
    listed = await console.page("/keys")
    assert "<code>crm1</code> (pool bulk)" in listed and password not in listed
    # Checked without a system_id: the login is the key's first characters, pool `all`.
    text = await post_key(console, [("name", "plain"), ("scopes", "send"), ("smpp", "1")])
    found = SMPP_PASSWORD.search(text)
    assert found is not None
    plain = next(k for k in await console.gw.store.list_api_keys(console.account.id)
                 if k.name == "plain")  # fmt: skip
    assert plain.smpp_system_id == plain.prefix and plain.smpp_pool is None
    assert await bind(console, plain.prefix, found.group(1)) == (plain.id, None)
    # Not checked: no SMPP login, whatever the other fields say, and no password shown.
    unchecked = [("name", "http"), ("scopes", "send"), ("smpp_system_id", "http1"),
                 ("smpp_pool", "bulk")]  # fmt: skip
    text = await post_key(console, unchecked)
    assert 'id="smpp-password"' not in text
    http = next(k for k in await console.gw.store.list_api_keys(console.account.id)
                if k.name == "http")  # fmt: skip
    assert http.smpp_system_id is None and http.smpp_pool is None


async def test_bad_smpp_input_is_answered_as_a_page(console: Console) -> None:
    await post_key(console, [("name", "first"), ("scopes", "send"), ("smpp", "1"),
                             ("smpp_system_id", "taken")])  # fmt: skip
    other, _ = await console.gw.create_account("other@example.com", PASSWORD)
    await console.gw.routing.create(other, "secret")
    for fields, words, status in (
        ([("smpp_system_id", "bad id!")], "Invalid SMPP system_id", 400),
        ([("smpp_system_id", "x" * 16)], "Invalid SMPP system_id", 400),
        ([("smpp_system_id", "TAKEN")], "SMPP system_id TAKEN is taken", 400),
        ([("smpp_pool", "nope")], "not found", 400),
        ([("smpp_pool", "secret")], "not found", 400),  # another account's pool
    ):
        data = [("name", "second"), ("scopes", "send"), ("smpp", "1"), *fields]
        text = await post_key(console, data, status)
        assert words in text, (fields, text[:800])
    [only] = await console.gw.store.list_api_keys(console.account.id)
    assert only.name == "first"


# -- the OTP-confirmed device delete ------------------------------------------------------------


def confirmed(c: Console) -> Confirmed:
    native = c.client.app[NATIVE]
    return Confirmed(native.gw, native.sender)


async def code_in(c: Console, sms_id: int | None) -> str:
    """The code an SMS carries, read from the message the server stored to send it."""
    assert sms_id is not None
    message = await c.gw.store.message_by_id(c.account.id, sms_id)
    assert message is not None
    found = CODE.search(message.body)
    assert found is not None, message.body
    return found.group(1)


async def delete_codes(c: Console) -> list[int]:
    """The ids of the SMS that carried codes to delete a device, oldest first."""
    listed = await c.gw.store.list_messages(MessageFilter(account_id=c.account.id))
    return [m.id for m in listed if "to delete device" in m.body]


async def verify_phone(c: Console) -> None:
    core = confirmed(c)
    made = await core.set_phone(Caller(c.account), PHONE)
    assert made.sent is not None
    await core.verify_phone(Caller(c.account), await code_in(c, made.sent.sms_id))


def shift(c: Console, seconds: float) -> Callable[[], int]:
    real = c.gw.clock
    c.gw.clock = lambda: real() + int(seconds * US)
    return real


async def test_without_a_verified_phone_only_the_admin_cli_deletes(console: Console) -> None:
    dev = f"/devices/{console.device.id}"
    page = await console.page(dev)
    assert 'id="no-phone"' in page and "only the admin" in page and 'id="send-code"' not in page
    _, text = await console.post(f"{dev}/delete-code", {}, status=400)
    assert "no verified phone number" in text
    _, text = await console.post(f"{dev}/delete", {"otp": "123456"}, status=400)
    assert "no verified phone number" in text
    assert await console.gw.store.device_by_id(console.device.id) is not None


async def test_wrong_codes_lock_and_the_right_code_deletes(console: Console) -> None:
    await verify_phone(console)
    dev = f"/devices/{console.device.id}"
    assert 'id="send-code"' in await console.page(dev)
    # Without the form's token no code is sent.
    await console.post(f"{dev}/delete-code", {}, csrf=False, status=403)
    location, _ = await console.post(f"{dev}/delete-code", {})
    assert location == f"{dev}/delete"
    page = await console.page(location)
    assert "A code was sent by SMS to +49********290" in page and 'id="otp"' in page
    sent = await delete_codes(console)
    assert len(sent) == 1
    code = await code_in(console, sent[0])
    _, text = await console.post(f"{dev}/delete-code", {}, status=429)  # one per 10 minutes
    assert "a new one can be asked for in" in text
    wrong = "000000" if code != "000000" else "111111"
    for tries in range(MAX_TRIES - 1):
        _, text = await console.post(f"{dev}/delete", {"otp": wrong}, status=400)
        assert f"Wrong code ({MAX_TRIES - 1 - tries} tries left)" in text
    _, text = await console.post(f"{dev}/delete", {"otp": wrong}, status=429)
    assert f"try again in {LOCK_SECONDS} s" in text
    _, text = await console.post(f"{dev}/delete", {"otp": code}, status=429)  # locked: even so
    assert re.search(r"try again in \d+ s", text)
    for junk in ("", "x" * 200, "١٢٣٤٥٦"):  # empty, long, non-ASCII digits: refused, no 500
        await console.post(f"{dev}/delete", {"otp": junk}, status=429)
    assert await console.gw.store.device_by_id(console.device.id) is not None
    shift(console, max(LOCK_SECONDS, RESEND_SECONDS) + 1)
    location, _ = await console.post(f"{dev}/delete-code", {})
    sent = await delete_codes(console)
    assert len(sent) == 2
    code = await code_in(console, sent[-1])
    location, _ = await console.post(f"{dev}/delete", {"otp": code})
    assert location == "/devices"
    assert "Device hall deleted" in await console.page("/devices")
    assert await console.gw.store.device_by_id(console.device.id) is None
    await console.page(dev, 404)


async def test_another_accounts_device_cannot_be_deleted(console: Console) -> None:
    await verify_phone(console)
    gw = console.gw
    other, _ = await gw.create_account("other@example.com", PASSWORD)
    theirs, _ = await gw.create_device(other, "theirs")
    for path in (f"/devices/{theirs.id}/delete-code", f"/devices/{theirs.id}/delete"):
        _, text = await console.post(path, {"otp": "123456"}, status=404)
        assert "Device not found" in text
    await console.page(f"/devices/{theirs.id}/delete", 404)
    await console.page("/devices/abc/delete", 404)
    assert await gw.store.device_by_id(theirs.id) is not None
