"""Login and logout.

There is no session before login, so the login form's CSRF check is a double submit: the form and
a cookie carry the same random value, which a page on another site can neither read nor set
(SameSite=Strict keeps the cookie off cross-site posts as well). The password check goes through
Gateway.login, with the same lockouts and slow-downs as the API's logins.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from simhive.server.console.base import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    refused,
    render,
    set_cookie,
)
from simhive.server.console.state import CONSOLE
from simhive.server.core.errors import AuthError


def _safe_next(prefix: str, target: str) -> str:
    """Only a path of this console: never another site (//host, scheme:) after login."""
    home = prefix + "/"
    if target.startswith(home) and not target.startswith("//") and "\\" not in target:
        return target
    return home


async def login_form(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if await console.sessions.get(request.cookies.get(COOKIE)) is not None:
        raise web.HTTPSeeOther(_safe_next(console.settings.prefix, request.query.get("next", "")))
    return _form(request, error=None, email="")


def _form(request: web.Request, error: str | None, email: str, status: int = 200) -> web.Response:
    console = request.app[CONSOLE]
    token = secrets.token_urlsafe(24)
    response = render(console, "login.html", status=status, login_csrf=token, error=error,
                      email=email, next=request.query.get("next", ""), account=None,
                      request=request)  # fmt: skip
    set_cookie(request, response, LOGIN_COOKIE, token, console)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    form = await request.post()
    given = form.get(CSRF_FIELD)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if (
        not isinstance(given, str)
        or not expected
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        return refused(console, request, "The login form is out of date. Reload it and try again.")
    email = form.get("email")
    password = form.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return _form(request, "Enter your email and password.", str(email or ""), status=400)
    try:
        account = await console.gateway.login(email, password, client=request.remote)
    except AuthError as exc:
        return _form(request, exc.message, email, status=401)
    token, _session = await console.sessions.start(account.id)
    target = _safe_next(console.settings.prefix, request.query.get("next", ""))
    response = web.HTTPSeeOther(target)
    set_cookie(request, response, COOKIE, token, console)
    response.del_cookie(LOGIN_COOKIE, path=console.settings.prefix or "/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    token = request.cookies.get(COOKIE)
    session = await console.sessions.get(token)
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if session is None or not session.csrf_ok(given if isinstance(given, str) else None):
        return refused(console, request, "Your session has ended already.")
    await console.sessions.end(token)
    response = web.HTTPSeeOther(console.url("/login"))
    response.del_cookie(COOKIE, path=console.settings.prefix or "/")
    raise response
