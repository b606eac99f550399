"""The control API: JSON over HTTP on 127.0.0.1, for tests to drive the emulator while it runs.

Every error is a JSON object {"error": "..."} with status 400 (bad input) or 404 (unknown modem,
slot or number); handlers never let an exception escape as a 500 for bad input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .emulator import Emulator
from .faults import FaultError
from .network import NetworkError

log = logging.getLogger(__name__)

EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
        ) from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KeyError as exc:
        return _error(404, str(exc.args[0]) if exc.args else "not found")
    except (FaultError, NetworkError) as exc:
        return _error(400, str(exc))


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).live_state())


async def get_modem(request: web.Request) -> web.Response:
    emu = _emulator(request)
    ports = emu.get(request.match_info["id"])
    entry = next(m for m in emu.describe()["modems"] if m["id"] == ports.modem.id)
    return web.json_response({**entry, "live": ports.modem.describe()})


async def post_faults(request: web.Request) -> web.Response:
    modem = _emulator(request).get(request.match_info["id"]).modem
    changed = modem.apply_faults(await _body(request))
    return web.json_response({"changed": changed, "faults": modem.faults.describe()})


async def delete_faults(request: web.Request) -> web.Response:
    modem = _emulator(request).get(request.match_info["id"]).modem
    modem.clear_faults()
    return web.json_response({"faults": modem.faults.describe()})


async def unplug(request: web.Request) -> web.Response:
    emu = _emulator(request)
    await emu.unplug(request.match_info["id"])
    return web.json_response(emu.live_state())


async def replug(request: web.Request) -> web.Response:
    emu = _emulator(request)
    await emu.replug(request.match_info["id"])
    return web.json_response(emu.live_state())


async def post_sim(request: web.Request) -> web.Response:
    """Change a SIM's situation: {"roaming": bool, "csq": 0..31|99, "present": bool,
    "ussd": {"*100#": "reply text", "*101#": null}}."""
    modem = _emulator(request).get(request.match_info["id"]).modem
    try:
        slot = int(request.match_info["slot"])
        state = modem.sims[slot]
    except (ValueError, IndexError):
        raise KeyError(f"modem {modem.id} has no slot {request.match_info['slot']}") from None
    spec = await _body(request)
    if not isinstance(spec, dict) or set(spec) - {"roaming", "csq", "present", "ussd"}:
        return _error(400, "expected an object with roaming, csq, present and/or ussd")
    ussd = spec.get("ussd")
    if "ussd" in spec and not (
        isinstance(ussd, dict)
        and all(
            isinstance(k, str) and k and (v is None or isinstance(v, str)) for k, v in ussd.items()
        )
    ):
        return _error(400, 'ussd: expected {"<code>": "<reply text>" or null}')
    for key in ("roaming", "present"):
        if key in spec and not isinstance(spec[key], bool):
            return _error(400, f"{key}: expected true or false")
    if "csq" in spec:
        csq = spec["csq"]
        if isinstance(csq, bool) or not isinstance(csq, int) or not (0 <= csq <= 31 or csq == 99):
            return _error(400, "csq: expected 0..31 or 99")
        state.sim.csq = csq
    if "roaming" in spec:
        state.sim.set_roaming(spec["roaming"])
    if "present" in spec:
        state.sim.present = spec["present"]
    if isinstance(ussd, dict):
        for code, reply in ussd.items():
            if reply is None:
                state.sim.ussd.pop(code, None)
            else:
                state.sim.ussd[code] = reply
    modem.network_changed()
    _emulator(request).write_state()  # the serving operator is part of emulator.json
    return web.json_response(modem.describe())


async def post_sms(request: web.Request) -> web.Response:
    spec = await _body(request)
    if not isinstance(spec, dict):
        return _error(400, "expected an object {from, to, text}")
    sender, to, text = spec.get("from"), spec.get("to"), spec.get("text")
    if not all(isinstance(v, str) and v for v in (sender, to, text)):
        return _error(400, "from, to and text are required strings")
    assert isinstance(sender, str) and isinstance(to, str) and isinstance(text, str)
    emu = _emulator(request)
    if emu.network.lookup(to) is None:
        return _error(404, f"{to} is not an emulated number")
    return web.json_response(emu.network.inject(sender, to, text), status=201)


async def get_submitted(request: web.Request) -> web.Response:
    network = _emulator(request).network
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return _error(400, "since: expected an integer id")
    items = network.submitted_since(since)
    modem = request.query.get("modem")
    if modem:
        items = [s for s in items if s.modem == modem]
    # what json_response({"submitted": [s.describe() ...]}) would write, from per-record text
    body = '{"submitted": [' + ", ".join(s.json() for s in items) + "]}"
    return web.Response(text=body, content_type="application/json")


async def delete_submitted(request: web.Request) -> web.Response:
    network = _emulator(request).network
    network.submitted.clear()
    return web.json_response({"submitted": []})


async def get_storage(request: web.Request) -> web.Response:
    modem = _emulator(request).get(request.match_info["id"]).modem
    return web.json_response(
        {
            "modem": modem.id,
            "slots": [{"slot": s.sim.slot, "memories": s.storage.describe()} for s in modem.sims],
        }
    )


async def get_network(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).network.describe())


async def post_network(request: web.Request) -> web.Response:
    network = _emulator(request).network
    network.configure(await _body(request))
    return web.json_response(network.describe())


def make_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=256 * 1024)
    app[EMULATOR] = emulator
    app.router.add_get("/state", get_state)
    app.router.add_get("/modems/{id}", get_modem)
    app.router.add_post("/modems/{id}/faults", post_faults)
    app.router.add_delete("/modems/{id}/faults", delete_faults)
    app.router.add_post("/modems/{id}/unplug", unplug)
    app.router.add_post("/modems/{id}/replug", replug)
    app.router.add_post("/modems/{id}/sims/{slot}", post_sim)
    app.router.add_get("/modems/{id}/storage", get_storage)
    app.router.add_post("/sms", post_sms)
    app.router.add_get("/submitted", get_submitted)
    app.router.add_delete("/submitted", delete_submitted)
    app.router.add_get("/network", get_network)
    app.router.add_post("/network", post_network)
    return app


async def start_control(emulator: Emulator, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(emulator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server  # aiohttp keeps the bound socket here; needed for port 0
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    emulator.control_url = f"http://127.0.0.1:{actual}"
    return runner
