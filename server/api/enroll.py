"""`POST /agent/v1/enroll`: an agent's host swaps an enrollment code for its device token
(server/core/enrollment.py; `simhive-agent enroll URL CODE` calls it). The only agent route
without a device token: the code is the credential. Errors in the agent protocol's shape."""

from __future__ import annotations

import logging

from aiohttp import web

from simhive.server.api.agent import TooLarge, _json_body, error
from simhive.server.api.compat import GATEWAY
from simhive.server.core.enrollment import Enrollment
from simhive.server.core.errors import AuthError, GatewayError
from simhive.server.store.base import StoreError

PATH = "/agent/v1/enroll"
log = logging.getLogger("simhive.server")


async def enroll(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        body = await _json_body(request)
        code = body.get("code")
        if not isinstance(code, str) or not 0 < len(code) <= 64:
            raise GatewayError("code: the enrollment code, a string")
        device_id, token = await Enrollment(gw.store, gw.clock).redeem(code)
        device = await gw.store.device_by_id(device_id)
        if device is None:  # deleted since the code was made
            raise AuthError("The device of this code no longer exists")
    except AuthError as exc:
        return error(401, "unauthorized", exc.message)
    except (TooLarge, web.HTTPRequestEntityTooLarge):
        return error(413, "too_large", "body too large")
    except GatewayError as exc:
        return error(400, "bad_request", exc.message)
    except StoreError as exc:
        log.error("storage failure on %s: %s", request.path, exc)
        return error(503, "unavailable", "storage unavailable, try again")
    log.info("device %d enrolled", device.id)
    return web.json_response({"device_id": device.id, "name": device.title, "token": token})


def add_route(app: web.Application) -> None:
    app.router.add_post(PATH, enroll)
