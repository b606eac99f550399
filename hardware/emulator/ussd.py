"""USSD in the emulator: `AT+CUSD` answered from per-SIM scripted replies.

A SIM's replies are a mapping code -> text (`POST /modems/{id}/sims/{slot}` with
`{"ussd": {"*100#": "Balance: 5.00 EUR"}}`). `AT+CUSD=1,"<code>"[,<dcs>]` answers OK at once;
the network's answer follows a moment later as the unsolicited `+CUSD: 0,"<text>",<dcs>`, as on
real modems. Text the GSM alphabet can carry goes out with dcs 15, as plain text in the TE
character set, or as packed septets in hex on Huawei sticks (their known quirk); anything
else as UCS-2 hex with dcs 72. A code without a reply gets `+CUSD: 4` (not supported).
"""

from __future__ import annotations

import asyncio

from simhive.agent.modem import gsm7

from .engine import Call, CmeError, Kind, Session, command

REPLY_DELAY = 0.1  # seconds between the OK and the network's answer
DCS_GSM7, DCS_UCS2 = 15, 72


def encode_reply(text: str, *, packed: bool, ucs2_te: bool) -> tuple[str, int]:
    """The +CUSD string and its dcs for `text`."""
    if not gsm7.is_gsm7(text):
        return text.encode("utf-16-be").hex().upper(), DCS_UCS2
    if packed:
        septets = gsm7.encode(text)
        if len(septets) % 8 == 7:
            septets.append(0x0D)  # a CR pads a last septet that would read as "@" (23.038)
        return gsm7.pack(septets).hex().upper(), DCS_GSM7
    if ucs2_te:
        return text.encode("utf-16-be").hex().upper(), DCS_GSM7
    return text, DCS_GSM7


@command("+CUSD")
async def cusd(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CUSD: (0-2)"]
    if c.kind is Kind.READ:
        return ["+CUSD: 1"]
    args = c.args
    n = c.int_arg(0, 0)
    if n not in (0, 1, 2):
        raise CmeError(3)
    if n == 2 or len(args) < 2:
        return []  # cancel the session / set the result code presentation
    s.modem.check_sim(s.slot, sms=False)
    if not s.modem.registered(s.slot):
        raise CmeError(30)  # no network service
    code = args[1]
    slot = s.slot
    reply = s.sim.sim.ussd.get(code)
    name = s.modem.urc_name("+CUSD", slot)
    if reply is None:
        line = f"{name}: 4"
    else:
        text, dcs = encode_reply(
            reply, packed=s.modem.profile.ussd_packed, ucs2_te=s.settings.cscs == "UCS2"
        )
        line = f'{name}: 0,"{text}",{dcs}'
    asyncio.get_running_loop().call_later(REPLY_DELAY, s.urc, line)
    return []
