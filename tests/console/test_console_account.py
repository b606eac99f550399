"""The console's account page over HTTP, in process: the phone number one-time codes go to is set
and verified with the native API's own core calls, the code read from the SMS the server stored
to send it. Wrong codes, lockouts and the resend wait come back as the page with the core's words
(never a 500), every form needs the CSRF token, and another account's number is neither shown
nor verified here."""

from __future__ import annotations

import html
import re

from simhive.server.api.v1.http import NATIVE
from simhive.server.core.confirmed import Confirmed
from simhive.server.core.keys import Caller
from simhive.server.core.models import Account, MessageFilter
from simhive.server.core.otp import LOCK_SECONDS, MAX_TRIES, RESEND_SECONDS
from tests.console.test_console_http import PASSWORD, Console
from tests.console.test_console_http import console as console  # a fixture these tests use

US = 1_000_000
PHONE = "+4915752982290"
CODE = re.compile(r"simhive code (\d{6}) ")


async def verify_codes(c: Console, account: Account | None = None) -> list[str]:
    """The codes the server sent to verify a number, oldest first, read from the messages it
    stored to carry them (the core keeps only the codes' digests)."""
    owner = account or c.account
    listed = await c.gw.store.list_messages(MessageFilter(account_id=owner.id))
    found = [CODE.search(m.body) for m in sorted(listed, key=lambda m: m.id)]
    return [f.group(1) for f in found if f is not None and "verify this number" in f.string]


async def phone_state(c: Console) -> tuple[str | None, bool]:
    phone = await c.gw.store.account_phone(c.account.id)
    return (phone.number, phone.verified is not None) if phone else (None, False)


def shift(c: Console, seconds: float) -> None:
    real = c.gw.clock
    c.gw.clock = lambda: real() + int(seconds * US)


async def test_set_and_verify_the_number_with_the_code_the_core_sent(console: Console) -> None:
    page = await console.page("/account")
    assert "op@example.com" in page and console.account.timezone in page
    assert 'href="/account" aria-current="page"' in page  # in the nav, marked as here
    assert re.search(r'id="phone-state">none set', page) and 'id="verify-form"' not in page
    # Without the form's token nothing is stored and nothing is sent.
    _, text = await console.post("/account/phone", {"number": PHONE}, csrf=False, status=403)
    assert "security token" in text
    assert await phone_state(console) == (None, False) and await verify_codes(console) == []
    location, _ = await console.post("/account/phone", {"number": PHONE})
    assert location == "/account"
    page = await console.page("/account")
    assert f"Number {PHONE} saved. A code was sent by SMS to +49********290" in page
    assert "Not verified" in page and 'id="verify-form"' in page
    assert await phone_state(console) == (PHONE, False)
    [code] = await verify_codes(console)
    await console.post("/account/phone/verify", {"code": code}, csrf=False, status=403)
    assert await phone_state(console) == (PHONE, False)
    wrong = "000000" if code != "000000" else "111111"
    _, text = await console.post("/account/phone/verify", {"code": wrong}, status=400)
    assert f"Wrong code ({MAX_TRIES - 1} tries left)" in text and 'id="verify-form"' in text
    location, _ = await console.post("/account/phone/verify", {"code": code})
    assert location == "/account"
    page = await console.page("/account")
    assert f"Number {PHONE} verified" in page and "Verified</span> since" in page
    assert 'id="verify-form"' not in page
    assert await phone_state(console) == (PHONE, True)
    # The API sees the same number, verified; and the device delete now takes a code.
    native = console.client.app[NATIVE]
    _, secret = await native.create_key(Caller(console.account), "check", ["admin"])
    answer = await console.client.get(
        "/api/v1/account/phone", headers={"Authorization": f"Bearer {secret}"}
    )
    assert (await answer.json())["number"] == PHONE and (await answer.json())["verified"]
    device_page = await console.page(f"/devices/{console.device.id}/delete")
    assert 'id="send-code"' in device_page and 'id="no-phone"' not in device_page


async def test_the_device_delete_points_to_the_account_page(console: Console) -> None:
    page = await console.page(f"/devices/{console.device.id}/delete")
    assert 'id="no-phone"' in page and 'href="/account" id="to-account"' in page
    assert "PUT /api/v1/account/phone" not in page


async def test_lockout_and_resend_wait_are_shown_in_the_cores_words(console: Console) -> None:
    await console.post("/account/phone", {"number": PHONE})
    [code] = await verify_codes(console)
    # A second code for the same number within the resend wait: refused, none sent.
    _, text = await console.post("/account/phone", {"number": PHONE}, status=429)
    assert "a new one can be asked for in" in html.unescape(text) and 'id="phone-form"' in text
    assert len(await verify_codes(console)) == 1
    wrong = "000000" if code != "000000" else "111111"
    for tries in range(MAX_TRIES - 1):
        _, text = await console.post("/account/phone/verify", {"code": wrong}, status=400)
        assert f"Wrong code ({MAX_TRIES - 1 - tries} tries left)" in text
    _, text = await console.post("/account/phone/verify", {"code": wrong}, status=429)
    assert f"try again in {LOCK_SECONDS} s" in text
    _, text = await console.post("/account/phone/verify", {"code": code}, status=429)
    assert re.search(r"try again in \d+ s", text)  # locked: even the right code waits
    assert await phone_state(console) == (PHONE, False)
    shift(console, max(LOCK_SECONDS, RESEND_SECONDS) + 1)
    await console.post("/account/phone", {"number": PHONE})
    codes = await verify_codes(console)
    assert len(codes) == 2
    await console.post("/account/phone/verify", {"code": codes[-1]})
    assert await phone_state(console) == (PHONE, True)


async def test_bad_input_is_answered_as_the_page(console: Console) -> None:
    for number, words in (
        ("", "Enter the phone number"),
        ("not a number", "Invalid phone number: not a number"),
        ("030 1234567", "international"),
        ("+" + "1" * 100, "too long"),
    ):
        _, text = await console.post("/account/phone", {"number": number}, status=400)
        assert words in html.unescape(text), (number, text[:800])
        assert 'id="phone-error"' in text and 'id="phone-form"' in text
    assert await phone_state(console) == (None, False) and await verify_codes(console) == []
    _, text = await console.post("/account/phone/verify", {"code": "123456"}, status=400)
    assert "No phone number is set" in text
    await console.post("/account/phone", {"number": PHONE})
    for junk in ("", "x" * 200):  # no code: refused before the core, not counted as a try
        _, text = await console.post("/account/phone/verify", {"code": junk}, status=400)
        assert "Enter the 6-digit code" in text
    # Not ASCII digits: a wrong try in the core's words (the first counted one).
    _, text = await console.post("/account/phone/verify", {"code": "١٢٣٤٥٦"}, status=400)
    assert f"Wrong code ({MAX_TRIES - 1} tries left)" in text
    assert await phone_state(console) == (PHONE, False)


async def test_another_accounts_number_is_not_shown_nor_verified_here(console: Console) -> None:
    native = console.client.app[NATIVE]
    core = Confirmed(native.gw, native.sender)
    other, _ = await console.gw.create_account("other@example.com", PASSWORD)
    theirs = "+4915752982299"
    await core.set_phone(Caller(other), theirs)
    [their_code] = await verify_codes(console, other)
    page = await console.page("/account")
    assert theirs not in page and "none set" in page
    _, text = await console.post("/account/phone/verify", {"code": their_code}, status=400)
    assert "No phone number is set" in text
    # The same number here: its code is this account's own; theirs does not verify it.
    await console.post("/account/phone", {"number": theirs})
    [ours] = await verify_codes(console)
    if ours != their_code:  # one chance in a million that both are alike
        _, text = await console.post("/account/phone/verify", {"code": their_code}, status=400)
        assert "Wrong code" in text
    assert await phone_state(console) == (theirs, False)
    other_phone = await console.gw.store.account_phone(other.id)
    assert other_phone is not None and other_phone.verified is None
    await core.verify_phone(Caller(other), their_code)  # theirs was not used up here
