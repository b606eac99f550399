"""A PDU time stamp as the installed python-gammu decodes it, to compare with ours.

The python-gammu wheels (3.5) give an aware datetime with the PDU's own offset. python-gammu
3.2.5, which scripts/bootstrap builds where no wheel exists (32-bit Raspberry Pi OS: Debian 12's
Gammu 1.42 is too old for newer releases), gives the same wall-clock time without the offset.
The oracle tests compare what the installed version can say, found by decoding one PDU.
"""

from __future__ import annotations

from datetime import datetime

import gammu

# A DELIVER from Gammu's own test dumps (tests/at-sms/03.dump), stamped 2007-05-03 07:04:40+05:30.
_PROBE = "0791198948004544040C9119894882006200007050307040042206CF35689E9603"
AWARE: bool = gammu.DecodePDU(bytes.fromhex(_PROBE), SMSC=True)["DateTime"].tzinfo is not None


def as_gammu_gives(value: datetime | None) -> datetime | None:
    """Our decoded time stamp in the form python-gammu returns it."""
    if value is None or AWARE:
        return value
    return value.replace(tzinfo=None)
