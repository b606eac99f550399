"""Phone number normalisation (compat-api.md sections 3 and 4).

Stored form: `+` and digits for international numbers, plain digits for national ones (the agent
sends those with type of number "unknown"). The rules are deliberately lenient because real clients
send `+49 157 52982212`, `+1- (928) -111-22-33` and, when they forget to URL-encode, a space where
the `+` was.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from simhive.server.core.errors import InvalidInput

# Characters people put into numbers for readability; none of them carries meaning.
_STRIP = str.maketrans("", "", " \t\r\n-().,/\\\u00a0")
MIN_DIGITS = 3
MAX_DIGITS = 20
# E.164 caps an international number at 15 digits including the country code.
MAX_E164_DIGITS = 15


# A number with its separators fits in 40 characters; longer input is normalised uncached.
_CACHED_LENGTH = 40


@functools.lru_cache(maxsize=4096)
def _normalise_cached(raw: str, rules: tuple[tuple[str, str], ...]) -> str:
    return _normalise(raw, rules)


def normalise(raw: str, rules: Sequence[tuple[str, str]] = ()) -> str:
    """Normalise one number or raise InvalidInput("Invalid phone number: <raw>").

    `rules` are the device's prefix rewrites (prefix -> replacement, first match wins), applied
    after cleaning, e.g. ("0", "+49") or ("49", "+49").

    Results are memoised (senders repeat their recipients: OTPs, alerts to the same on-call
    phones); a refused number raises again each time and a long one is not kept, so junk never
    fills the cache.
    """
    if len(raw) <= _CACHED_LENGTH and isinstance(rules, tuple):
        return _normalise_cached(raw, rules)
    return _normalise(raw, rules)


def _normalise(raw: str, rules: Sequence[tuple[str, str]]) -> str:
    text = raw
    # An unencoded `+` arrives as a space: " 4915752982212" means "+4915752982212". No country
    # code starts with 0, so " 0157..." is a national number with a stray space (e.g. "a, b").
    if text[:1].isspace() and text.lstrip()[:1] in "123456789" and text.lstrip()[:1]:
        text = "+" + text.lstrip()
    text = text.strip().translate(_STRIP)
    if text.startswith("00"):
        text = "+" + text[2:]
    for prefix, replacement in rules:
        if prefix and text.startswith(prefix):
            text = replacement + text[len(prefix) :]
            break
    digits = text[1:] if text.startswith("+") else text
    if not (digits.isascii() and digits.isdigit()) or not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise InvalidInput(f"Invalid phone number: {raw.strip()}")
    if text.startswith("+") and (len(digits) > MAX_E164_DIGITS or country_code(digits) is None):
        raise InvalidInput(f"Invalid phone number: {raw.strip()}")
    return text


def country_code(digits: str) -> int | None:
    """The ITU country calling code that `digits` (E.164 without `+`) starts with, if any.

    Uses phonenumbers' metadata, so new or retired codes follow the library's updates.
    """
    if not digits or digits[0] == "0":
        return None
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


def region_of(number: str) -> str | None:
    """Lowercase ISO 3166 alpha-2 region of an international number, when one region owns it."""
    if not number.startswith("+"):
        return None
    code = country_code(number[1:])
    if code is None:
        return None
    regions = COUNTRY_CODE_TO_REGION_CODE[code]
    return regions[0].lower() if len(regions) == 1 else None


def split_recipients(sendto: str) -> list[str]:
    """`sendto` may list several numbers separated by commas; empty items are ignored."""
    return [item for item in sendto.split(",") if item.strip()]
