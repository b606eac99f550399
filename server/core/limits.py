"""Documented limits (docs/configuration.md lists them; keep the two in step)."""

from __future__ import annotations

# Largest request body the HTTP layer reads; bigger bodies get HTTP 413 with the error shape.
# A full 1,000-entry addalotofsms batch of 1,000-character texts fits with room to spare.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Entries in one addalotofsms batch (docs/compat-api.md, "Limits").
MAX_BATCH = 1000
# Numbers in one comma-separated `sendto`; larger lists belong in addalotofsms.
MAX_RECIPIENTS = 100
# Characters in one message text: 255 concatenated parts of 153 GSM-7 characters is the protocol
# ceiling (39,015); 10,000 keeps a mistaken paste from tying up a SIM for hours.
MAX_BODY_CHARS = 10_000
# Titles of devices, tags and pakets, and contact names.
MAX_TITLE_CHARS = 200
# Rows in one getallsms answer (docs/compat-api.md, "Limits"; `limit`/`offset` page further).
MAX_LIST_ROWS = 1000
# Account tokens kept per account: gettoken issues a new one each call, the oldest fall away.
MAX_ACCOUNT_TOKENS = 100
# Seconds an authenticated token (and a looked-up device) stays cached in memory: a token revoked
# or a device changed by another process (the admin CLI) takes effect at most this much later.
TOKEN_CACHE_SECONDS = 2.0
# Login limits (server/core/ratelimit.py; gettoken, and smstosend with email + pass). Hard locks
# per (email, client address) and per client address, counted within the window:
LOGIN_FAILURES_PER_PAIR = 10
LOGIN_FAILURES_PER_CLIENT = 50
LOGIN_WINDOW_SECONDS = 15 * 60
# Slow-downs instead of locks, so no stranger can lock the owner out: after this many failures
# for one email (from all addresses together) within the window, its password checks are spaced
# this many seconds apart; after this many failures on the whole server, all checks are.
LOGIN_SLOWDOWN_EMAIL_AFTER = 10
LOGIN_SLOWDOWN_EMAIL_SECONDS = 2.0
LOGIN_SLOWDOWN_GLOBAL_AFTER = 100
LOGIN_SLOWDOWN_GLOBAL_SECONDS = 0.1
# A slowed-down login waits at most this long for its turn; later turns are refused at once.
LOGIN_SLOWDOWN_MAX_WAIT_SECONDS = 10.0
# Reading requests (server/http_server.py; `simhive-server run` options of the same names):
# a request's headers must arrive within HEADER_TIMEOUT_SECONDS of their first byte (of the
# connection's opening, for its first request), its body within BODY_TIMEOUT_SECONDS of the
# headers (4 MiB in 60 s is 70 kB/s); late connections are closed. At most MAX_CONNECTIONS are
# open at once, further ones wait in the listen queue; an idle keep-alive connection is closed
# after KEEPALIVE_SECONDS (or earlier, at the cap, to make room).
HEADER_TIMEOUT_SECONDS = 20.0
BODY_TIMEOUT_SECONDS = 60.0
MAX_CONNECTIONS = 512
KEEPALIVE_SECONDS = 75.0
# Idempotency-Key on the compat API's storing routes (docs/compat-api.md): how long a key keeps
# its answer, and its longest accepted length.
IDEMPOTENCY_KEY_SECONDS = 24 * 3600
IDEMPOTENCY_KEY_MAX_CHARS = 255
