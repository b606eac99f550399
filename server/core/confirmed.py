"""Operations confirmed by a one-time code (otp.py): verifying the account's phone number, and
deleting a device or resetting its token. The phone needs the `admin` scope, the device
operations the `devices` scope. The delete itself is the core's (Gateway.delete_device, the one
the `device delete` CLI runs too): the device goes with its SIMs and messages."""

from __future__ import annotations

from dataclasses import dataclass

from simhive.server.core.errors import InvalidInput
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import Caller
from simhive.server.core.otp import (
    DELETE_DEVICE,
    RESET_TOKEN,
    VERIFY_PHONE,
    Otp,
    Sent,
    phone_number,
)
from simhive.server.core.sending import Sender
from simhive.server.store.otp_base import AccountPhone

DEVICE_ACTIONS = {"delete": DELETE_DEVICE, "reset_token": RESET_TOKEN}


def phone_target(number: str) -> int:
    """The code's target for verifying a number: the number itself (E.164 digits fit in 64
    bits), so each number has its own resend wait."""
    return int(number.lstrip("+"))


@dataclass(frozen=True, slots=True)
class PhoneView:
    phone: AccountPhone | None
    sent: Sent | None = None


class Confirmed:
    def __init__(self, gw: Gateway, sender: Sender) -> None:
        self.gw = gw
        self.store = gw.store
        self.otp = Otp(gw.store, sender, gw.clock)

    # -- the account's phone ---------------------------------------------------------------
    async def phone(self, caller: Caller) -> PhoneView:
        caller.require("admin")
        return PhoneView(await self.store.account_phone(caller.account.id))

    async def set_phone(self, caller: Caller, raw: str) -> PhoneView:
        """Set the number and send it a code; it is verified once the code comes back."""
        caller.require("admin")
        number = phone_number(raw)
        sent = await self.otp.send(caller, VERIFY_PHONE, phone_target(number), number)
        await self.store.set_account_phone(caller.account.id, number, self.gw.clock())
        return PhoneView(await self.store.account_phone(caller.account.id), sent)

    async def verify_phone(self, caller: Caller, code: str) -> PhoneView:
        caller.require("admin")
        phone = await self.store.account_phone(caller.account.id)
        if phone is None:
            raise InvalidInput("No phone number is set", code="otp_not_requested")
        await self.otp.confirm(caller, VERIFY_PHONE, phone_target(phone.number), code)
        await self.store.verify_account_phone(caller.account.id, phone.number, self.gw.clock())
        return PhoneView(await self.store.account_phone(caller.account.id))

    # -- devices ---------------------------------------------------------------------------
    async def request(self, caller: Caller, device_id: int, action: str) -> Sent:
        """Send the code that `delete` or `reset_token` of the device will need."""
        caller.require("devices")
        device = await self.gw.device_of(caller.account, device_id, fresh=True)
        number = await self.otp.verified_number(caller)
        return await self.otp.send(caller, DEVICE_ACTIONS[action], device.id, number)

    async def delete(self, caller: Caller, device_id: int, code: str) -> None:
        caller.require("devices")
        device = await self.gw.device_of(caller.account, device_id, fresh=True)
        await self.otp.verified_number(caller)
        await self.otp.confirm(caller, DELETE_DEVICE, device.id, code)
        await self.gw.delete_device(caller.account, device.id)
        self.gw.notifier.notify(device.id)  # a long poll of its agent ends

    async def reset_token(self, caller: Caller, device_id: int, code: str) -> str:
        caller.require("devices")
        device = await self.gw.device_of(caller.account, device_id, fresh=True)
        await self.otp.verified_number(caller)
        await self.otp.confirm(caller, RESET_TOKEN, device.id, code)
        return await self.gw.reset_device_token(device.id)
