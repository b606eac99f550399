"""A scripted modem behind the in-memory transport: the test plays the device.

Answers are data: a dict from command (upper case, exact, or a prefix ending in `*`) to the
reply text. Storage, +CMGS references, ESC and Ctrl-Z handling are simulated so the AtModem can
run its whole life (init, sweep, send, receive) without a pty.
"""

from __future__ import annotations

from collections.abc import Callable

from simhive.agent.modem.transport import MemoryTransport

STANDARD: dict[str, str] = {
    "AT": "OK",
    "ATE0": "OK",
    "ATE1": "OK",
    "AT+CMEE=1": "OK",
    "AT+CMEE?": "+CMEE: 1\nOK",
    "AT+CPIN?": "+CPIN: READY\nOK",
    "AT+CFUN?": "+CFUN: 1\nOK",
    "AT+CFUN=1": "OK",
    "AT+CFUN=0": "OK",
    "AT+CFUN=1,1": "OK",
    "AT+CMGF=0": "OK",
    'AT+CSCS="GSM"': "OK",
    "AT+CSMS?": "+CSMS: 0,1,1,1\nOK",
    "AT+CSMS=1": "+CSMS: 1,1,1\nOK",
    "AT+CNMA": "OK",
    "AT+CPMS=?": '+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")\nOK',
    "AT+CPMS=*": "+CPMS: 0,30,0,30,0,30\nOK",
    "AT+CNMI=?": "+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)\nOK",
    "AT+CNMI=*": "OK",
    "AT+CREG=2": "OK",
    "AT+COPS=3,2": "OK",
    "AT+COPS=3,0": "OK",
    "AT+CGMI": "FakeCorp\nOK",
    "AT+CGMM": "Fake 1000\nOK",
    "AT+CGMR": "Revision 1.0\nOK",
    "AT+CGSN": "490154203237518\nOK",
    "AT+CIMI": "262011234567890\nOK",
    "AT+CCID": "+CCID: 89490200001234567890\nOK",
    "AT+CREG?": '+CREG: 2,1,"4CA","81DE445"\nOK',
    "AT+CEREG?": "ERROR",
    "AT+CGREG?": "+CGREG: 0,1\nOK",
    "AT+CSQ": "+CSQ: 21,99\nOK",
    "AT+CNUM": '+CNUM: "","+4915112345678",145\nOK',
}


class FakeModem:
    def __init__(
        self,
        transport: MemoryTransport,
        replies: dict[str, str] | None = None,
        *,
        eol: str = "\r\n",
        echo: bool = False,
    ) -> None:
        self.t = transport
        self.t.on_write = self.on_write
        self.replies = {**STANDARD, **(replies or {})}
        self.eol = eol
        self.echo = echo
        self.commands: list[str] = []
        self.submitted: list[str] = []
        self.storage: dict[int, tuple[int, str]] = {}  # index -> (stat, pdu hex)
        self.reports: dict[int, tuple[int, str]] = {}  # SR memory
        self.mem = "SM"
        self.mr = 0
        self.silent = False  # a hung modem: reads everything, answers nothing
        self.cms_next: list[int] = []  # +CMS ERROR codes for the next submits
        self.no_prompt = False
        self.hook: Callable[[str], str | None] | None = None
        self._buf = bytearray()
        self._pdu_len: int | None = None

    # -- output ----------------------------------------------------------------------------

    def lines(self, text: str) -> None:
        out = "".join(f"{self.eol}{line}{self.eol}" for line in text.split("\n"))
        self.t.feed(out.encode("latin-1"))

    def urc(self, text: str) -> None:
        self.lines(text)

    def deliver(self, pdu_hex: str, stat: int = 0) -> int:
        """Store an incoming SMS and announce it with +CMTI; returns the index."""
        index = max([0, *self.storage]) + 1
        self.storage[index] = (stat, pdu_hex)
        return index

    # -- input -----------------------------------------------------------------------------

    def on_write(self, data: bytes) -> None:
        for b in data:
            if self._pdu_len is not None:
                if b == 0x1A:
                    self._submit(self._buf.decode("ascii"))
                    self._buf.clear()
                elif b == 0x1B:
                    self._buf.clear()
                    self._pdu_len = None
                    if not self.silent:
                        self.lines("OK")
                else:
                    self._buf.append(b)
                continue
            if b == 0x1B:
                self._buf.clear()
                continue
            if b == 0x0D:
                cmd = self._buf.decode("latin-1").strip()
                self._buf.clear()
                if cmd:
                    self._command(cmd)
                continue
            if b != 0x0A:
                self._buf.append(b)

    def _command(self, cmd: str) -> None:
        self.commands.append(cmd)
        if self.silent:
            return
        if self.echo:
            self.t.feed(cmd.encode() + b"\r")
        if self.hook is not None:
            answer = self.hook(cmd)
            if answer is not None:
                if answer:
                    self.lines(answer)
                return
        up = cmd.upper()
        if up.startswith("AT+CMGS="):
            if self.no_prompt:
                return
            self._pdu_len = int(up.split("=")[1])
            before = self.replies.get("AT+CMGS=*", "<prompt>").split("<prompt>")[0].strip("\n")
            if before:
                self.lines(before)
            self.t.feed(b"\r\n> ")
            return
        if up.startswith("AT+CPMS=") and "?" not in up:
            self.mem = cmd.split("=")[1].split(",")[0].strip('"')
        if up == "AT+CMGL=4":
            store = self.reports if self.mem == "SR" else self.storage
            body = "".join(
                f"+CMGL: {i},{stat},,{len(pdu) // 2 - 8}\n{pdu}\n"
                for i, (stat, pdu) in sorted(store.items())
            )
            self.lines(body + "OK")
            return
        if up.startswith("AT+CMGR="):
            store = self.reports if self.mem == "SR" else self.storage
            idx = int(up.split("=")[1])
            if idx not in store:
                self.lines("+CMS ERROR: 321")
                return
            stat, pdu = store[idx]
            self.lines(f"+CMGR: {stat},,{len(pdu) // 2 - 8}\n{pdu}\nOK")
            return
        if up.startswith("AT+CMGD="):
            store = self.reports if self.mem == "SR" else self.storage
            store.pop(int(up.split("=")[1].split(",")[0]), None)
            self.lines("OK")
            return
        reply = self.replies.get(up)
        if reply is None:
            for key, value in self.replies.items():
                if key.endswith("*") and up.startswith(key[:-1]):
                    reply = value
                    break
        self.lines(reply if reply is not None else "ERROR")

    def _submit(self, pdu_hex: str) -> None:
        self._pdu_len = None
        if self.silent:
            return
        if self.cms_next:
            self.lines(f"+CMS ERROR: {self.cms_next.pop(0)}")
            return
        self.submitted.append(pdu_hex)
        self.mr = (self.mr + 1) % 256
        self.lines(self.replies.get("<PDU>", "+CMGS: {mr}\nOK").format(mr=self.mr))
