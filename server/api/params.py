"""Request parameters for the compat API (docs/compat-api.md, "Rules that hold for every route").

Parameters are the union of the query string and the body, for every verb; a body value wins over
a query value with the same key. Bodies may be urlencoded, multipart or a JSON object. Clients are
sloppy with headers (the naive Python client sends no content type; PHP sends multipart for
everything), so the body is sniffed when the declared type does not fit. Invalid UTF-8 is replaced,
never a reason to fail.

Query strings and form bodies are percent-decoded exactly once, here: the client encoded each
value once, so one decode gives back what it meant. (aiohttp's `request.query_string` is already
decoded; splitting and decoding that again turned a sent `100%41` into `100A`.) An escape whose
bytes are not UTF-8 is kept as written rather than replaced: it is almost always a `%` the client
forgot to encode (`50%de réduction`), and keeping it loses nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from simhive.server.core.errors import InvalidInput

_BOUNDARY_RE = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_DISPOSITION_PARAM_RE = re.compile(r';\s*([a-zA-Z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')
# A JSON `\ud800` escape decodes to a lone surrogate, which no UTF-8 encoder (SQLite's binding,
# our own answers) accepts.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_UTF8_BOM = b"\xef\xbb\xbf"


class MalformedBody(InvalidInput):
    """The body could not be read at the HTTP level; the connection is closed after the answer."""


@dataclass
class Params:
    """Merged parameters. Values are strings, except JSON-body values (any JSON type)."""

    values: dict[str, Any] = field(default_factory=dict)
    # The JSON object when the whole body was one (the raw addalotofsms form).
    json_body: dict[str, Any] | None = None
    # The client's address, for login lockouts.
    client: str | None = None

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def text(self, name: str) -> str | None:
        """The parameter as text; absent, null and empty string all mean None."""
        value = self.values.get(name)
        return scalar_text(value, name)

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None or not value.strip():
            raise InvalidInput(f"Parameter {name} is required")
        return value


def scalar_text(value: Any, name: str) -> str | None:
    if type(value) is str:  # the common case first: batch ingest calls this 8,000 times a request
        return value if value != "" else None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, str):
        return value if value != "" else None
    raise InvalidInput(f"Invalid value for {name}")


async def read_params(request: web.Request) -> Params:
    params = Params(client=request.remote)
    # The query exactly as sent: parse_pairs does the one and only percent-decoding.
    query = request.rel_url.raw_query_string
    if query:
        params.values.update(parse_pairs(query))
    if not request.body_exists:
        return params
    # read() enforces the application's client_max_size and raises HTTP 413 beyond it.
    try:
        raw = await request.read()
    except (RequestPayloadError, HttpProcessingError):
        # aiohttp decodes gzip/deflate bodies itself; garbage under that header, or a broken
        # chunked encoding, surfaces here. It is the client's fault, so it gets the error shape.
        # Marking the stream finished stops aiohttp from draining the broken body again after
        # our answer (it would log that as an unhandled exception); the answer closes the
        # connection, because the bytes after a broken body cannot be trusted as a next request.
        request.content.feed_eof()
        encoding = request.headers.get("Content-Encoding")
        if encoding:
            raise MalformedBody(
                f"Malformed request body: cannot decode Content-Encoding {short(encoding)}"
            ) from None
        raise MalformedBody("Malformed request body") from None
    except ConnectionError:
        # The client went away before its Content-Length was sent: nobody reads the answer, but
        # it is their failure, not ours, and no reason for an error log with a traceback.
        raise MalformedBody("Request body incomplete: the connection closed early") from None
    if raw.startswith(_UTF8_BOM):  # Windows tools (.NET, PowerShell, Notepad) write one
        raw = raw[3:]
    if not raw.strip():
        return params
    ctype = request.content_type.lower()
    if ctype == "multipart/form-data":
        _merge(params, _multipart(raw, request.headers.get("Content-Type", "")))
    elif ctype == "application/json" or (
        ctype != "application/x-www-form-urlencoded" and raw.lstrip()[:1] in (b"{", b"[")
    ):
        _merge_json(params, raw)
    else:
        _merge(params, parse_pairs(raw.decode("utf-8", "replace")))
    return params


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True)`, in a third of its time, except that an escape
    whose bytes are not UTF-8 is kept as written (see `_unquote`), where parse_qsl replaces it.

    Every request has a query string or form body to split, and the stdlib's general version
    (argument coercion, field limits, two unquote calls per pair) was the largest share of the
    parsing cost of an addsms request; most keys and many values need no unquoting at all.
    """
    out: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "+" in key:
            key = key.replace("+", " ")
        if "%" in key:
            key = _unquote(key)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value)
        out.append((key, value))
    return out


def _unquote(text: str) -> str:
    """`text` percent-decoded once as UTF-8; escapes whose bytes are not UTF-8 stay as written.

    For ASCII text (every client that encodes its form) that is unquote_to_bytes + decode: the
    stdlib's unquote splits the text into ASCII runs with a regular expression first, which for
    ASCII text is the whole text, at half the cost of the call. Anything else (non-ASCII text in
    a body, or escapes that do not decode) takes the slower walk over the escape runs.
    """
    if text.isascii():
        try:
            return unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _ESCAPE_RUN_RE.sub(_decode_run, text)


# A run of consecutive escapes: a multi-byte UTF-8 character is only whole inside one run.
_ESCAPE_RUN_RE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _decode_run(match: re.Match[str]) -> str:
    run = match.group()
    data = bytes.fromhex(run.replace("%", ""))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # surrogateescape turns each byte that is not part of a UTF-8 character into one lone
    # surrogate (U+DC80-U+DCFF, which valid UTF-8 never yields); byte i of the run was written
    # as run[3i:3i+3], so walking the result with a byte count finds each escape to keep.
    out: list[str] = []
    pos = 0
    for char in data.decode("utf-8", "surrogateescape"):
        if "\udc80" <= char <= "\udcff":
            out.append(run[3 * pos : 3 * pos + 3])
            pos += 1
        else:
            out.append(char)
            pos += len(char.encode("utf-8"))
    return "".join(out)


def _merge(params: Params, pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        params.values[key] = value


def load_json(text: str | bytes, what: str) -> Any:
    """json.loads with every failure as InvalidInput naming `what`.

    The stdlib decoder recurses once per nesting level, so `[[[[...` 100,000 deep raises
    RecursionError (not ValueError); no real client nests more than a few levels. Lone surrogates
    (`"\\ud800"` escapes, valid JSON but not valid Unicode text) become U+FFFD, like invalid
    UTF-8 bytes do (docs/compat-api.md): stored as they are they would fail the database write.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        value = json.loads(text)
        # Text decoded with "replace" holds no surrogates, so only an escape can make one.
        if "\\ud" in text or "\\uD" in text:
            value = scrub_surrogates(value)
        return value
    except RecursionError:
        raise InvalidInput(f"{what}: nested too deeply") from None
    except ValueError:
        raise InvalidInput(what) from None


def scrub_surrogates(value: Any) -> Any:
    """`value` (decoded JSON) with every lone surrogate in its strings and keys as U+FFFD.

    Lists and dicts are changed in place: PHP's json_encode escapes every non-ASCII character, so
    a batch of emoji texts takes this walk, and rebuilding 1,000 entries would double its cost.
    """
    if isinstance(value, str):
        if value.isascii() or not _SURROGATE_RE.search(value):
            return value
        return _SURROGATE_RE.sub("\ufffd", value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not (type(item) is str and item.isascii()):
                value[index] = scrub_surrogates(item)
    elif isinstance(value, dict):
        bad_keys = [k for k in value if not k.isascii() and _SURROGATE_RE.search(k)]
        for key in bad_keys:
            value[_SURROGATE_RE.sub("\ufffd", key)] = value.pop(key)
        for key, item in value.items():
            if not (type(item) is str and item.isascii()):
                value[key] = scrub_surrogates(item)
    return value


def _merge_json(params: Params, raw: bytes) -> None:
    data = load_json(raw, "Invalid JSON body")
    if not isinstance(data, dict):
        raise InvalidInput("Invalid JSON body: expected an object")
    params.json_body = data
    params.values.update(data)


def _multipart(raw: bytes, content_type: str) -> list[tuple[str, str]]:
    """Text fields of a multipart/form-data body; file parts are ignored (docs/compat-api.md)."""
    m = _BOUNDARY_RE.search(content_type)
    if not m:
        raise InvalidInput("Malformed multipart body: no boundary")
    delimiter = b"--" + m.group(1).encode("latin-1", "replace")
    out: list[tuple[str, str]] = []
    chunks = raw.split(delimiter)
    if len(chunks) < 2:
        raise InvalidInput("Malformed multipart body")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = chunk.partition(b"\n\n")
            if not sep:
                raise InvalidInput("Malformed multipart body")
        if body.endswith(b"\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n"):
            body = body[:-1]
        name, filename = _disposition(head.decode("utf-8", "replace"))
        if name is None or filename is not None:
            continue
        out.append((name, body.decode("utf-8", "replace")))
    return out


def _disposition(head: str) -> tuple[str | None, str | None]:
    for line in head.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        found: dict[str, str] = {}
        for pm in _DISPOSITION_PARAM_RE.finditer(value):
            quoted, bare = pm.group(2), pm.group(3)
            found[pm.group(1).lower()] = (
                quoted.replace('\\"', '"') if quoted is not None else (bare or "")
            )
        return found.get("name"), found.get("filename")
    return None, None


def short(text: str) -> str:
    """`text` cut to 40 characters for an error message."""
    return text if len(text) <= 40 else text[:40] + "..."
