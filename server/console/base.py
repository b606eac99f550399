"""The console's plumbing: templates, the session cookie, CSRF checks, and the page wrapper.

Every page handler is wrapped by `page`: it finds the session from the cookie (none or expired:
a GET goes to the login page, anything else is refused), reads a POSTed form and refuses it
unless it carries the session's CSRF token, and renders a GatewayError (bad input, not found) as
the page's own error message instead of the API's JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from simhive.server.console.state import CONSOLE, HERE, Console
from simhive.server.core.dates import US, from_us, resolve_zone
from simhive.server.core.errors import GatewayError, NotFound
from simhive.server.core.models import Account
from simhive.server.core.sessions import Session
from simhive.server.core.status import Status, label

COOKIE = "simhive_session"
LOGIN_COOKIE = "simhive_login"  # the login form's own CSRF value (there is no session yet)
CSRF_FIELD = "csrf"
# Pages load nothing from elsewhere and run no inline script; no other site may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Ctx:
    """What a page handler gets: the account, its session, the posted form, the console."""

    request: web.Request
    console: Console
    account: Account
    session: Session
    form: MultiDictProxy[str | bytes | Any]

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value.strip() if isinstance(value, str) else default

    def flash(self, text: str, kind: str = "ok") -> None:
        self.session.flash.append((kind, text))

    def redirect(self, path: str) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(self.console.url(path))

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        return render(self.console, template, status=status, session=self.session,
                      account=self.account, request=self.request, **values)  # fmt: skip


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["status_label"] = status_label
    env.filters["status_class"] = status_class
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


# The console's own words for the states; the compat API keeps the vendor's labels ("Income").
_LABELS: dict[int, str] = {
    Status.NEW: "Waiting",
    Status.TAKEN: "Taken by the device",
    Status.QUEUED: "Queued on the device",
    Status.INCOMING: "Received",
    Status.SENT: "Sent",
    Status.DELIVERED: "Delivered",
    Status.NOT_DELIVERED: "Not delivered",
    Status.FAILED: "Not sent: failed",
    Status.NO_SERVICE: "Not sent: no service",
    Status.NULL_PDU: "Not sent: bad message",
    Status.RADIO_OFF: "Not sent: radio off",
    Status.NOT_ALLOWED: "Not sent: not allowed",
    Status.NOT_ALLOWED_AT_ALL: "Not sent: not allowed at all",
}


def status_label(code: int) -> str:
    return _LABELS.get(code) or label(code)


def status_class(code: int) -> str:
    """A CSS class per status family, so colour is never the only cue (the label is shown)."""
    if code == Status.DELIVERED:
        return "st-ok"
    if code in (Status.NEW, Status.TAKEN, Status.QUEUED, Status.SENT):
        return "st-wait"
    if code == Status.INCOMING:
        return "st-in"
    return "st-bad"


def local_time(value: int | None, zone_name: str) -> str:
    if value is None:
        return ""
    return from_us(value).astimezone(resolve_zone(zone_name).tz).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: int | None, now: int) -> str:
    if value is None:
        return "never"
    seconds = max(0, (now - value) // US)
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def render(
    console: Console,
    template: str,
    *,
    status: int = 200,
    session: Session | None = None,
    **values: Any,
) -> web.Response:
    flashes = list(session.flash) if session is not None else []
    if session is not None:
        session.flash.clear()
    html = console.env.get_template(template).render(
        url=console.url,
        csrf=session.csrf if session is not None else "",
        flashes=flashes,
        **values,
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               console: Console, max_age: int | None = None) -> None:  # fmt: skip
    response.set_cookie(
        name,
        value,
        path=console.settings.prefix or "/",
        httponly=True,
        samesite="Strict",
        secure=served_over_tls(request),
        max_age=max_age,
    )


def served_over_tls(request: web.Request) -> bool:
    """TLS here, or at a reverse proxy on this machine that says so (X-Forwarded-Proto). The
    header counts only from loopback: from anyone else it could be made up."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    return forwarded and (request.remote or "").startswith(("127.", "::1", "::ffff:127."))


def refused(console: Console, request: web.Request, why: str, status: int = 403) -> web.Response:
    return render(console, "refused.html", status=status, why=why, request=request,
                  account=None)  # fmt: skip


Page = Callable[[Ctx], Awaitable[web.StreamResponse]]


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        console = request.app[CONSOLE]
        token = request.cookies.get(COOKIE)
        session = await console.sessions.get(token)
        if session is None:
            if request.method == "GET":
                target = quote(request.rel_url.path_qs, safe="")
                raise web.HTTPSeeOther(console.url(f"/login?next={target}"))
            return refused(console, request, "Your session has ended. Log in again.")
        form: MultiDictProxy[Any] = MultiDictProxy(MultiDict(request.query))
        if request.method == "POST":
            form = await request.post()
            if not session.csrf_ok(_text(form.get(CSRF_FIELD))):
                return refused(console, request, "This form is out of date (missing or wrong"
                               " security token). Reload the page and try again.")  # fmt: skip
        account = await console.gateway.store.account_by_id(session.account_id)
        if account is None:
            return refused(console, request, "This account no longer exists.")
        ctx = Ctx(request, console, account, session, form)
        try:
            return await handler(ctx)
        except GatewayError as exc:
            status = 404 if isinstance(exc, NotFound) else 400
            return ctx.render("error.html", status=status, message=exc.message)
        finally:  # notes added for the next page, or shown on this one (redirects are raised)
            await console.sessions.save_flash(token, session)

    return wrapped


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def int_field(text: str, name: str, *, allow_empty: bool = False) -> int | None:
    from simhive.server.core.errors import InvalidInput

    text = text.strip()
    if not text:
        if allow_empty:
            return None
        raise InvalidInput(f"{name} is required")
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 12:
        raise InvalidInput(f"{name} must be a whole number")
    return int(text)
