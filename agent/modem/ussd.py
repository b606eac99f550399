"""USSD (`AT+CUSD`, 27.007 7.15): send a code such as `*100#`, decode the network's answer,
and find a prepaid balance in it.

The answer comes as `+CUSD: <m>[,"<str>",<dcs>]`, usually as an unsolicited line after the
command's OK (some modems put it before). `<dcs>` is a cell-broadcast data coding scheme
(23.038 section 5): GSM 7-bit (0x0F, 0x00-0x3F, 0x40-0x7F with alphabet bits 00), UCS-2
(0x48, and 0x11 with a two-character language prefix) or 8-bit. Modems differ in how they
hand over 7-bit text: most convert it to the TE character set (`AT+CSCS="GSM"`, plain text);
Huawei sticks give the packed septets as hex. UCS-2 comes as hex of UTF-16BE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import gsm7

__all__ = [
    "UssdError",
    "UssdReply",
    "cusd_request",
    "decode_ussd",
    "parse_amount",
    "parse_cusd",
]

# <m> of +CUSD: what the network did with the session.
STATUS_TEXT = {
    0: "done",
    1: "further user action required",
    2: "terminated by the network",
    3: "answered by another local client",
    4: "operation not supported",
    5: "network timed out",
}
_CODE = re.compile(r"^[0-9*#+]{1,160}$")


class UssdError(Exception):
    """A USSD request that got no usable answer; the message says why."""


@dataclass(frozen=True)
class UssdReply:
    status: int  # <m>
    text: str  # decoded; "" when the answer carried no string
    dcs: int | None

    @property
    def ok(self) -> bool:
        return self.status in (0, 1) and bool(self.text)

    def describe(self) -> str:
        return STATUS_TEXT.get(self.status, f"status {self.status}")


def cusd_request(code: str) -> str:
    """`AT+CUSD=1,"<code>",15`; only digits, `*`, `#` and `+` (never quotes or CR) pass."""
    if not _CODE.match(code):
        raise ValueError(f"a USSD code is digits, * # and +, like *100#, not {code!r}")
    return f'AT+CUSD=1,"{code}",15'


def _alphabet(dcs: int | None) -> str:
    """ "gsm7", "ucs2" or "8bit" for a CBS data coding scheme (23.038 section 5)."""
    if dcs is None:
        return "gsm7"
    group = dcs >> 4
    if group in (0, 2, 3):
        return "gsm7"
    if dcs == 0x11:
        return "ucs2"  # UCS-2 preceded by a language
    if dcs == 0x10:
        return "gsm7"
    if 4 <= group <= 7:
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x3]
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def _is_hex(s: str) -> bool:
    return len(s) >= 2 and len(s) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in s)


def _printable(text: str) -> bool:
    return all(c.isprintable() or c in "\r\n" for c in text)


def decode_ussd(s: str, dcs: int | None) -> str:
    """The text of a +CUSD string in the given coding, as the modem handed it over."""
    alphabet = _alphabet(dcs)
    if alphabet == "ucs2" and _is_hex(s) and len(s) % 4 == 0:
        try:
            text = bytes.fromhex(s).decode("utf-16-be")
        except UnicodeDecodeError:
            return s
        return text[2:].lstrip("\r\n") if dcs == 0x11 else text
    if alphabet == "8bit" and _is_hex(s):
        return bytes.fromhex(s).decode("latin-1")
    if alphabet == "gsm7" and _is_hex(s) and not s.isdigit():
        # Packed septets in hex (Huawei). A plain-text answer made only of hex letters and
        # digits is rare, and one that unpacks to printable text rarer still.
        raw = bytes.fromhex(s)
        count = len(raw) * 8 // 7
        septets = gsm7.unpack(raw, count)
        if septets and septets[-1] == 0x0D and len(raw) % 7 == 0:
            septets = septets[:-1]  # a CR fills the last septet of a full octet (23.038 6.1.2.3.1)
        try:
            text = gsm7.decode(septets)
        except (ValueError, KeyError, IndexError):
            return s
        if text and _printable(text) and any(c.isalpha() or c == " " for c in text):
            return text
    return s


def parse_cusd(args: str) -> UssdReply:
    """`0,"Your balance is 5.00 EUR",15` -> UssdReply(0, "Your balance ...", 15)."""
    # ASCII digits only (agent/modem/digits.py): int() would take '²' or Arabic-Indic digits.
    m = re.match(r'\s*([0-9]+)\s*(?:,\s*"((?:[^"]|"")*)"\s*(?:,\s*([0-9]+))?)?', args)
    if not m:
        raise UssdError(f"unreadable +CUSD answer: {args!r}")
    status = int(m.group(1))
    raw = m.group(2) or ""
    dcs = int(m.group(3)) if m.group(3) else None
    return UssdReply(status, decode_ussd(raw, dcs).strip(), dcs)


# A balance: an amount with a currency sign or code next to it, else the first decimal amount.
_CURRENCY = (
    r"(?:EUR|USD|GBP|CHF|PLN|CZK|SEK|NOK|DKK|HUF|RON|RUB|UAH|INR|TRY|BRL|ZAR|NGN|KES"
    r"|€|\$|£|руб\.?|грн\.?|zł|Kč|Ft|kr|lei)"
)
_NUMBER = r"(-?[0-9]{1,9}(?:[.,][0-9]{1,2})?)"  # ASCII digits: float() takes any others too
_AMOUNT_PATTERNS = (
    re.compile(_CURRENCY + r"\s?" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s?" + _CURRENCY, re.IGNORECASE),
    re.compile(r"(?<![0-9.,])(-?[0-9]{1,9}[.,][0-9]{2})(?![0-9.,]*[0-9])"),
)


def parse_amount(text: str) -> tuple[float | None, str | None]:
    """(amount, currency) found in an operator's balance text; (None, None) if there is none.

    "Ihr Guthaben beträgt 12,34 EUR" -> (12.34, "EUR"); "Balance: $5.00" -> (5.0, "$")."""
    for i, pattern in enumerate(_AMOUNT_PATTERNS):
        m = pattern.search(text)
        if m is None:
            continue
        if i == 0:
            currency, number = m.group(0)[: m.start(1) - m.start(0)].strip(), m.group(1)
        elif i == 1:
            number, currency = m.group(1), m.group(0)[m.end(1) - m.start(0) :].strip()
        else:
            number, currency = m.group(1), ""
        try:
            return float(number.replace(",", ".")), currency or None
        except ValueError:
            continue
    return None, None
