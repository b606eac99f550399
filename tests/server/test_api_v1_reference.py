"""GET /api/v1/docs: the browsable reference, rendered from the document /api/v1/openapi.json
serves. It lists every path and method of that document, shows the fields of bodies and answers,
and loads nothing from anywhere (it must work on a machine with no way out)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from simhive.server.api.v1 import reference
from simhive.server.api.v1.openapi import document
from simhive.server.api.v1.routes import ROUTES
from tests.server._v1 import V1
from tests.server._v1 import v1 as v1  # the fixture

METHODS = ("get", "put", "post", "patch", "delete")


class Page(HTMLParser):
    """The operations (sections with data-method/data-path), every URL the page refers to,
    and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: set[tuple[str, str]] = set()
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "section" and a.get("data-method"):
            self.operations.add((str(a["data-method"]), str(a["data-path"])))
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            if a.get(name):
                self.urls.append(str(a[name]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def fetch(v1: V1, path: str) -> Any:
    r = await v1.client.get(path)
    assert r.status == 200
    return r


async def test_the_reference_lists_every_operation_of_the_served_document(v1: V1) -> None:
    served = await (await fetch(v1, "/api/v1/openapi.json")).json()
    r = await fetch(v1, "/api/v1/docs")
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    page = Page()
    page.feed(await r.text())
    wanted = {(m.upper(), p) for p, item in served["paths"].items() for m in METHODS if m in item}
    assert len(wanted) == len(ROUTES) > 40
    assert page.operations == wanted
    text = " ".join(page.text)
    for item in served["paths"].values():
        for op in (item[m] for m in METHODS if m in item):
            assert op["operationId"] in text
    # the send route's body and answer fields are there, nested ones with their full names
    for name in ("recipients[].to", "recipients[].variables.{key}", "validity_minutes",
                 "parts_total", "invalid_credential", "Idempotency-Key"):  # fmt: skip
        assert name in text, name


async def test_the_reference_loads_nothing_from_elsewhere(v1: V1) -> None:
    html = await (await fetch(v1, "/api/v1/docs")).text()
    page = Page()
    page.feed(html)
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert page.urls  # it does link: to its own sections and to openapi.json
    for url in page.urls:
        assert url.startswith("#") or url == "openapi.json", url
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", html.replace("&#39;", "'")), "a URL"
    assert "@import" not in html and "url(" not in html


async def test_the_reference_answers_errors_in_the_api_shape(v1: V1) -> None:
    r = await v1.client.post("/api/v1/docs")
    assert r.status == 405 and r.headers["Allow"] == "GET"
    assert (await r.json())["error"]["code"] == "method_not_allowed"
    r = await v1.client.get("/api/v1/docs/")  # not a page of its own
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


def test_descriptions_are_escaped_and_only_backticks_become_code() -> None:
    doc = document(ROUTES)
    doc["paths"]["/api/v1/messages"]["post"]["summary"] = "<script>x</script> `a<b`"
    html = reference.render(doc)
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt; <code>a&lt;b</code>" in html
