"""Routes of /api/v1 for the account's phone number and the device operations a one-time code
confirms (server/core/confirmed.py); routes.py adds them to ROUTES."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.render import _obj, _time
from simhive.server.api.v1.schema import Bool, Int, Obj, Schema, Str
from simhive.server.core.confirmed import DEVICE_ACTIONS, Confirmed, PhoneView
from simhive.server.core.dates import iso
from simhive.server.core.otp import Sent

ID: dict[str, Schema] = {"id": Int(minimum=1, maximum=2**62, description="A device id.")}
CODE = Str(min_len=1, max_len=12, description="The 6-digit code of the SMS.")

SENT = _obj(
    {
        "sent_to": Str(description="The number the code went to, masked."),
        "expires": _time("When the code stops working.", nullable=False),
        "next_code_at": _time("When a new code may be asked for.", nullable=False),
        "sms_id": Int(nullable=True, description="The message that carries the code."),
    }
)
PHONE = _obj(
    {
        "number": Str(nullable=True),
        "verified": Bool(),
        "verified_at": _time(""),
        "code": _obj(SENT.fields, nullable=True, description="The code just sent, if any."),
    }
)


def _sent(s: Sent | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"sent_to": s.to, "expires": iso(s.expires), "next_code_at": iso(s.next_code_at),
            "sms_id": s.sms_id}  # fmt: skip


def _phone(v: PhoneView) -> dict[str, Any]:
    p = v.phone
    return {
        "number": p.number if p else None,
        "verified": p is not None and p.verified is not None,
        "verified_at": iso(p.verified) if p else None,
        "code": _sent(v.sent),
    }


def _confirmed(ctx: Ctx) -> Confirmed:
    return Confirmed(ctx.native.gw, ctx.native.sender)


async def get_phone(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _phone(await _confirmed(ctx).phone(ctx.caller))


async def set_phone(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _phone(await _confirmed(ctx).set_phone(ctx.caller, a["number"]))


async def verify_phone(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _phone(await _confirmed(ctx).verify_phone(ctx.caller, a["code"]))


async def request_code(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _sent(await _confirmed(ctx).request(ctx.caller, a["id"], a["action"]))


async def delete_device(ctx: Ctx, a: dict[str, Any]) -> Any:
    await _confirmed(ctx).delete(ctx.caller, a["id"], a["otp"])
    return {"deleted": a["id"]}


async def reset_token(ctx: Ctx, a: dict[str, Any]) -> Any:
    token = await _confirmed(ctx).reset_token(ctx.caller, a["id"], a["otp"])
    return {"id": a["id"], "token": token}


OTP = Obj(fields={"otp": CODE}, required=("otp",))

CONFIRMED_ROUTES: tuple[Route, ...] = (
    Route("GET", "/account/phone", "getPhone", "The account's phone number for one-time codes.",
          "account", "admin", get_phone, PHONE),
    Route("PUT", "/account/phone", "setPhone",
          "Set the account's phone number; a code is sent to it to verify it.", "account",
          "admin", set_phone, PHONE,
          body=Obj(fields={"number": Str(min_len=1, max_len=64, code="invalid_numbers")},
                   required=("number",))),
    Route("POST", "/account/phone/verify", "verifyPhone",
          "Confirm the phone number with the code sent to it.", "account", "admin",
          verify_phone, PHONE, body=Obj(fields={"code": CODE}, required=("code",))),
    Route("POST", "/devices/{id}/otp", "requestDeviceCode",
          "Send a code to the verified phone to delete the device or reset its token.",
          "devices", "devices", request_code, SENT, params=ID, owned=True,
          body=Obj(fields={"action": Str(enum=tuple(DEVICE_ACTIONS))}, required=("action",))),
    Route("POST", "/devices/{id}/delete", "deleteDevice",
          "Delete the device, confirmed by the code.", "devices", "devices", delete_device,
          Obj(fields={"deleted": Int()}, required=("deleted",)), params=ID, body=OTP,
          owned=True),
    Route("POST", "/devices/{id}/reset-token", "resetDeviceToken",
          "A new device token (shown once), confirmed by the code; the old one stops working.",
          "devices", "devices", reset_token,
          _obj({"id": Int(), "token": Str(description="Shown this once only.")}), params=ID,
          body=OTP, owned=True),
)  # fmt: skip
