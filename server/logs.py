"""Server logging: the format, the cheap-record switches, and secret-free records.

aiohttp logs every request its HTTP parser refuses (a bad chunk, an unknown Content-Encoding, a
request line over 8 KiB) as "Error handling request" at ERROR level with a full traceback, and
answers it with a plain 400. On a gateway reachable from a LAN that is the client's failure, not
the server's: an operator reading the log for real faults should not wade through parser
tracebacks, so those records become one WARNING line naming the client and the reason.

The parser's messages quote what it refused (the request line with its `token=`, a header value
with a bearer token), so the reason logged is chosen by the kind of error, never taken from its
message. As a last line of defence every record the server logs passes a scrubber that masks
anything shaped like a secret (docs/configuration.md, "Logs").
"""

from __future__ import annotations

import logging
import re
import sys

from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
    TransferEncodingError,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What each parser error is called in the log; the first match wins (subclasses first).
_REASONS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "request line or header too long"),
    (InvalidHeader, "invalid header"),
    (BadHttpMethod, "bad method"),
    (BadStatusLine, "bad request line"),
    (InvalidURLError, "invalid URL"),
    (ContentLengthError, "body shorter than its Content-Length"),
    (TransferEncodingError, "bad chunked body"),
    (ContentEncodingError, "undecodable Content-Encoding"),
    (PayloadEncodingError, "bad body"),
)
# Other BadHttpMessages carry a fixed sentence (the C parser's adds the offending bytes after a
# colon and a line break): its leading words are kept, up to the first character that is not a
# letter, space or punctuation (a digit, colon, slash or `=` ends it, so no token gets through).
_FIXED_TEXT = re.compile(r"[A-Za-z][A-Za-z ,.`'-]{0,80}")


def parser_error_reason(exc: HttpProcessingError) -> str:
    """A description of a refused request that quotes nothing of the request itself."""
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, BadHttpMessage):
        first = _FIXED_TEXT.match(str(exc.message).strip())
        if first and first.group().strip(" ,.`-"):
            return first.group().strip(" ,.`-")
    return "bad request"


class BrokenHttpFilter(logging.Filter):
    """Rewrites aiohttp's parser-error records (4xx HttpProcessingError) into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused broken HTTP from %s with %d: %s"
            record.args = (remote, exc.code, parser_error_reason(exc))
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True


# A secret parameter with its value, raw or percent-encoded (`token=…`, `pass%3D…`), a bearer
# credential, and anything shaped like a simhive token (32 lowercase hex digits on their own).
_SECRET_PARAM = re.compile(
    r"(?i)(?<![a-z0-9_])((?:token|pass|password|datajson|api_key)(?:=|%3D)|bearer\s+)[^\s&;'\"\\]+"
)
_TOKEN_SHAPE = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])")


def scrub(text: str) -> str:
    """`text` with secret-looking values replaced by ***."""
    return _TOKEN_SHAPE.sub("***", _SECRET_PARAM.sub(r"\1***", text))


class SecretScrubber(logging.Filter):
    """Masks secrets in a record's message and traceback (a handler filter: sees every record)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def setup() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretScrubber())
    logging.getLogger("aiohttp.server").addFilter(BrokenHttpFilter())
    # An access line per request is the most expensive thing a cheap request does; these are the
    # logging HOWTO's documented switches for the record fields we never print.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # HOWTO: skip the caller lookup
    # The group-commit writer thread returns from its fsync needing the GIL while the event loop
    # holds it; with the default 5 ms switch interval every commit then waits up to 5 ms, and so
    # does every request in its batch. 0.5 ms keeps that hand-over short.
    sys.setswitchinterval(0.0005)
