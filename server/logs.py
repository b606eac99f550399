"""Server logging: the format, the cheap-record switches, and a quiet line for broken HTTP.

aiohttp logs every request its HTTP parser refuses (a bad chunk, an unknown Content-Encoding, a
request line over 8 KiB) as "Error handling request" at ERROR level with a full traceback, and
answers it with a plain 400. On a gateway reachable from a LAN that is the client's failure, not
the server's: an operator reading the log for real faults should not wade through parser
tracebacks, so those records become one WARNING line naming the client and the reason.
"""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BrokenHttpFilter(logging.Filter):
    """Rewrites aiohttp's parser-error records (4xx HttpProcessingError) into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            # The parser's message quotes the offending request line under its first line, and
            # a request line carries the token: only the reason is logged.
            reason = str(exc.message).strip().split("\n", 1)[0].rstrip(": ") or "bad request"
            record.msg = "refused broken HTTP from %s with %d: %s"
            record.args = (remote, exc.code, reason)
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True


def setup() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
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
