"""One ESME connection: read PDUs, answer them, and (receivers) drain the account's outbox.

Every wait has a bound, so a slow or hostile peer costs only its own connection: the bind must
come within `bind_timeout` of connecting, a PDU's body within `read_timeout` of its header, a
bound session closes after `idle_timeout` without a PDU (ESMEs send enquire_link), and a write
the peer does not read within `write_timeout` closes it. A PDU whose length is out of range
cannot be skipped safely, so it gets generic_nack and the connection is closed; any other PDU
that does not decode gets generic_nack (or its response with an error) and the session goes on.

Requests run as tasks, so a window of submits is stored concurrently (the store commits them in
groups); more than `window` in flight, or more than the account's rate, get ESME_RTHROTTLED.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from simhive.server.core.dates import US, now_us
from simhive.server.core.errors import AuthError, Forbidden
from simhive.server.core.native_models import ApiKey
from simhive.server.core.ratelimit import Locked
from simhive.server.smpp.auth import Principal
from simhive.server.smpp.deliver import deliver_pdu
from simhive.server.smpp.pdu import (
    BODIES,
    HEADER_LEN,
    Cmd,
    Pdu,
    PduError,
    Status,
    Tag,
    check_length,
    decode,
    decode_header,
    encode,
    generic_nack,
    is_request,
    response,
    response_id,
    u8_tlv,
)
from simhive.server.store.base import StoreError
from simhive.server.store.sqlite_smpp import OutboxRow

if TYPE_CHECKING:
    from simhive.server.smpp.server import SmppServer

log = logging.getLogger("simhive.smpp")

SYSTEM_ID = "simhive"
INTERFACE_VERSION = 0x34
# An outbox row the ESME refused (or did not answer) waits this long before it is offered again.
RETRY_SECONDS = 10.0
# A claimed outbox row is held this much longer than response_timeout, to record the answer.
CLAIM_MARGIN_SECONDS = 5.0
# Unread output a session may have queued before its senders wait for the peer to read.
WRITE_BUFFER_BYTES = 256 * 1024


class Mode(enum.Flag):
    TX = enum.auto()
    RX = enum.auto()
    TRX = TX | RX


_BINDS = {
    Cmd.BIND_TRANSMITTER: Mode.TX,
    Cmd.BIND_RECEIVER: Mode.RX,
    Cmd.BIND_TRANSCEIVER: Mode.TRX,
}
# The API key scopes each bind needs: submitting sends, receiving reads receipts and SMS.
_SCOPES = {Mode.TX: ("send",), Mode.RX: ("read",), Mode.TRX: ("send", "read")}
_RESPONSES = {
    Cmd.DELIVER_SM_RESP,
    Cmd.ENQUIRE_LINK_RESP,
    Cmd.UNBIND_RESP,
    Cmd.GENERIC_NACK,
}


class Closing(Exception):
    """The session ends (unbind, bad framing, a peer too slow)."""


class Session:
    def __init__(
        self, server: SmppServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.mode: Mode | None = None
        self.who: Principal | None = None
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._requests = 0  # requests being handled (the window)
        self._write_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._delivering = 0
        self._deliver_task: asyncio.Task[None] | None = None
        self._unbound = False

    @property
    def account_id(self) -> int | None:
        return self.who.account.id if self.who is not None else None

    async def key_changed(self, key: ApiKey | None) -> None:
        """The session's key as read again (None: gone): close the session if the key may
        no longer bind as it did, else use the key's new settings."""
        if self.who is None or self.mode is None:
            return
        if (
            key is None
            or key.revoked is not None
            or key.smpp_system_id is None
            or any(not key.allows(s) for s in _SCOPES[self.mode])
        ):
            log.info("smpp %s: closing the session, its API key was revoked or changed",
                     self.who.name)  # fmt: skip
            await self.close()
            return
        self.who = dataclasses.replace(self.who, key=key, pool=key.smpp_pool)

    @property
    def receives(self) -> bool:
        """Bound as receiver or transceiver: takes deliver_sm."""
        return self.mode is not None and bool(self.mode & Mode.RX)

    # -- life cycle ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._read_loop()
        except (Closing, ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        except StoreError as exc:
            log.error("smpp %s: closing the session, the database failed: %s", self.client, exc)
        except Exception:  # a bug must cost this connection, never the server
            log.exception("smpp %s: closing the session after an unexpected error", self.client)
        finally:
            await self.close()

    async def close(self) -> None:
        tasks = list(self._tasks)
        if self._deliver_task is not None:
            tasks.append(self._deliver_task)
        for task in tasks:
            task.cancel()
        for fut in self._waiting.values():
            fut.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.server.forget(self)

    def wake(self) -> None:
        self._wake.set()

    # -- reading ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        bind_deadline = time.monotonic() + self.settings.bind_timeout
        while not self._unbound:
            if self.mode is None:
                wait = bind_deadline - time.monotonic()
                if wait <= 0:
                    raise Closing("no bind in time")
            else:
                wait = self.settings.idle_timeout
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(wait) as deadline:
                header = await self.reader.readexactly(HEADER_LEN)
                length, command_id, _status, sequence = decode_header(header)
                try:
                    check_length(length)
                except PduError as exc:
                    # The stream cannot be resynchronised: answer and hang up.
                    await self.send(generic_nack(sequence, exc.status))
                    raise Closing(str(exc)) from None
                deadline.reschedule(loop.time() + self.settings.read_timeout)
                body = await self.reader.readexactly(length - HEADER_LEN)
            try:
                pdu = decode(header + body)
            except PduError as exc:
                await self._refuse(command_id, sequence, exc)
                continue
            await self._dispatch(pdu)

    async def _refuse(self, command_id: int, sequence: int, exc: PduError) -> None:
        if command_id in BODIES and not is_request(command_id):
            return  # a malformed response to us: nothing to answer
        log.info("smpp %s: refused PDU 0x%08x: %s", self.client, command_id, exc)
        # A request whose framing is fine but one field is not gets its own response with that
        # field's status; an unknown command or a body that ends too early gets generic_nack.
        own_response = command_id in BODIES and command_id != Cmd.DELIVER_SM
        if own_response and exc.status not in (Status.RINVCMDLEN, Status.RINVCMDID):
            await self.send(Pdu(response_id(command_id), sequence, exc.status))
        else:
            await self.send(generic_nack(sequence, exc.status))

    async def _dispatch(self, pdu: Pdu) -> None:
        cmd = pdu.command_id
        if cmd in _RESPONSES:
            fut = self._waiting.pop(pdu.sequence, None)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            return
        if not is_request(cmd):
            return  # a response we did not wait for
        if cmd == Cmd.ENQUIRE_LINK:
            await self.send(response(pdu))
        elif cmd in _BINDS:
            await self._bind(pdu, _BINDS[Cmd(cmd)])
        elif cmd == Cmd.UNBIND:
            await self._unbind(pdu)
        elif cmd == Cmd.DELIVER_SM:
            await self.send(generic_nack(pdu.sequence, Status.RINVCMDID))  # ours to send
        elif self.mode is None or not self.mode & Mode.TX or self.who is None:
            await self.send(response(pdu, Status.RINVBNDSTS))
        elif self._requests >= self.settings.window or not await self._within_rate(self.who, cmd):
            await self.send(response(pdu, Status.RTHROTTLED))
        else:
            self._requests += 1
            self._spawn(self._request(self.who, pdu))

    async def _within_rate(self, who: Principal, cmd: int) -> bool:
        return cmd not in (Cmd.SUBMIT_SM, Cmd.SUBMIT_MULTI) or await self.server.admit(who)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, who: Principal, pdu: Pdu) -> None:
        handler = {
            Cmd.SUBMIT_SM: self.server.requests.submit_sm,
            Cmd.SUBMIT_MULTI: self.server.requests.submit_multi,
            Cmd.QUERY_SM: self.server.requests.query_sm,
            Cmd.CANCEL_SM: self.server.requests.cancel_sm,
        }[Cmd(pdu.command_id)]
        try:
            try:
                answer = await handler(who, pdu)
            except PduError as exc:
                answer = response(pdu, exc.status)
            except StoreError as exc:
                log.error("smpp %s: %s failed: %s", who.name, pdu.name, exc)
                answer = response(pdu, Status.RSYSERR)
            except Exception:  # a bug must cost this PDU an error answer, not the session
                log.exception("smpp %s: %s failed", who.name, pdu.name)
                answer = response(pdu, Status.RSYSERR)
            with contextlib.suppress(ConnectionError, OSError, TimeoutError, Closing):
                await self.send(answer)
        finally:
            self._requests -= 1

    # -- binding ---------------------------------------------------------------------------
    async def _bind(self, pdu: Pdu, mode: Mode) -> None:
        if self.mode is not None:
            await self.send(response(pdu, Status.RALYBND))
            return
        try:
            who = await self.server.auth.authenticate(
                pdu.text("system_id"), pdu.text("password"), self.client, _SCOPES[mode]
            )
        except Locked:
            log.warning("smpp bind of %r from %s refused: too many failures",
                        pdu.text("system_id"), self.client)  # fmt: skip
            await self.send(response(pdu, Status.RBINDFAIL))
            return
        except AuthError:
            log.info("smpp bind of %r from %s: wrong credentials", pdu.text("system_id"),
                     self.client)  # fmt: skip
            await self.send(response(pdu, Status.RINVPASWD))
            return
        except Forbidden as exc:
            log.info("smpp bind of %r from %s refused: %s", pdu.text("system_id"), self.client,
                     exc.message)  # fmt: skip
            await self.send(response(pdu, Status.RBINDFAIL))
            return
        except StoreError as exc:
            log.error("smpp bind: the database failed: %s", exc)
            await self.send(response(pdu, Status.RSYSERR))
            return
        if not self.server.may_bind(who):
            await self.send(response(pdu, Status.RBINDFAIL))
            return
        if mode & Mode.RX:
            await self.server.store.enable_mo(who.account.id, now_us())
        self.who, self.mode = who, mode
        answer = response(pdu, system_id=SYSTEM_ID)
        answer.tlvs = [u8_tlv(Tag.SC_INTERFACE_VERSION, INTERFACE_VERSION)]
        await self.send(answer)
        log.info("smpp %s bound %s from %s", who.name, mode.name, self.client)
        if mode & Mode.RX:
            self._deliver_task = asyncio.create_task(self._deliver_loop())

    async def _unbind(self, pdu: Pdu) -> None:
        # Answer the requests under way first: their responses must not follow unbind_resp.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.settings.read_timeout)
        await self.send(response(pdu))
        self._unbound = True

    # -- writing ---------------------------------------------------------------------------
    def _next_sequence(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    async def send(self, pdu: Pdu) -> None:
        # write() queues the whole PDU at once, so PDUs never interleave; only a peer that
        # leaves more than WRITE_BUFFER_BYTES unread makes senders wait, and only so long.
        self.writer.write(encode(pdu))
        if self.writer.transport.get_write_buffer_size() <= WRITE_BUFFER_BYTES:
            return
        async with self._write_lock:
            try:
                async with asyncio.timeout(self.settings.write_timeout):
                    await self.writer.drain()
            except TimeoutError:
                self.writer.transport.abort()
                raise Closing("peer does not read") from None

    # -- the outbox ------------------------------------------------------------------------
    async def _deliver_loop(self) -> None:
        assert self.who is not None
        account_id = self.who.account.id
        while True:
            room = self.settings.deliver_window - self._delivering
            if room > 0:
                now = now_us()
                # A claimed row is this session's until it is answered or the claim runs out
                # (an answer may take response_timeout; the margin covers recording it): no
                # other session, here or on another server over the same database, sends it.
                until = now + int((self.settings.response_timeout + CLAIM_MARGIN_SECONDS) * US)
                try:
                    rows = await self.server.store.claim(account_id, room, now, until)
                except StoreError as exc:
                    log.error("smpp outbox unavailable: %s", exc)
                    rows = []
                for row in rows:
                    self._delivering += 1
                    self._spawn(self._deliver(row))
            # Woken by the server when the account has rows to claim (one query per tick for
            # all sessions, server.py), and by our own deliveries finishing.
            await self._wake.wait()
            self._wake.clear()

    async def _deliver(self, row: OutboxRow) -> None:
        ok = False
        try:
            sequence = self._next_sequence()
            fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
            self._waiting[sequence] = fut
            try:
                await self.send(deliver_pdu(row, sequence))
                async with asyncio.timeout(self.settings.response_timeout):
                    answer = await fut
                ok = answer.command_id == Cmd.DELIVER_SM_RESP and answer.status == 0
            except (TimeoutError, ConnectionError, OSError, Closing):
                ok = False
            finally:
                self._waiting.pop(sequence, None)
            if ok:
                # Shielded: once the ESME has acknowledged, a closing session must still record
                # it, or the row would be delivered a second time after a reconnect.
                await asyncio.shield(self.server.store.delivered(row.id, now_us()))
            else:
                retry = now_us() + int(RETRY_SECONDS * US)
                await self.server.store.attempted(row.id, retry)
        except asyncio.CancelledError:
            # The session is closing: give the claim back so that a reconnect or another
            # session gets the row at once (at least once: the ESME may have read it).
            if not ok:
                with contextlib.suppress(StoreError):
                    await asyncio.shield(self.server.store.attempted(row.id, None))
            raise
        except StoreError as exc:
            log.error("smpp outbox row %d: could not record the attempt: %s", row.id, exc)
        finally:
            self._delivering -= 1
            self._wake.set()
