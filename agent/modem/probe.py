"""`simhive-agent probe PORT`: what is on this port? (model, firmware, IMEI, SIMs, network)

Runs the same init and readers as the agent, once, without supervision or message handling,
and returns plain JSON-able data. Nothing is deleted or sent. On a single-standby dual-SIM
modem only the active SIM is read (switching would disturb a running gateway).
"""

from __future__ import annotations

import dataclasses

from .atchannel import AtChannel, AtCommandError, AtTimeout
from .atinfo import read_iccid, read_identity, read_network
from .atinit import InitError, SimNotReady, initialise
from .countries import country_for_operator
from .dualsim import query_active_slot
from .profiles import DUAL_SIM_STYLES, detect, get_profile
from .transport import SerialTransport, Transport, TransportClosed

__all__ = ["probe", "probe_transport", "unusable"]

# What to do about each SimNotReady state (agent/modem/atinit.py) when probe finds it.
SIM_FIXES = {
    "missing": "insert a SIM (power off first) and check it sits right",
    "pin": 'the SIM wants its PIN: set pin = "…" for the device in the agent config',
    "puk": "the SIM is PUK-locked: unlock it with its PUK in a phone",
    "failure": "reseat the SIM or try it in a phone",
    "busy": "the SIM is still starting: try again in a few seconds",
}


async def probe(
    port: str, *, profile: str | None = None, baudrate: int = 115200
) -> dict[str, object]:
    """Probe a serial port; raises TransportClosed if it cannot be opened."""
    return await probe_transport(SerialTransport(port, baudrate=baudrate), profile=profile)


async def probe_transport(transport: Transport, *, profile: str | None = None) -> dict[str, object]:
    prof = get_profile(profile)
    ch = AtChannel(transport)
    await ch.open()
    result: dict[str, object] = {"port": transport.name}
    try:
        try:
            caps = await initialise(ch, prof, ready_wait=10.0)
            sim_error: str | None = None
        except SimNotReady as exc:
            caps, sim_error = None, f"{exc.state}: {exc}"
        identity = await read_identity(ch)
        if profile is None:
            prof = detect(identity.manufacturer, identity.model)
        result.update(dataclasses.asdict(identity))
        result["profile"] = prof.name
        sims: list[dict[str, object]] = []
        if caps is not None:
            result["capabilities"] = caps.as_dict()
            net = await read_network(ch)
            slot = 0
            dual = None
            for spec in DUAL_SIM_STYLES.values():
                active = await query_active_slot(ch, spec)
                if active is not None:
                    slot, dual = active, spec.style
                    break
            result["dual_sim"] = dual or "none"
            sims.append(
                {
                    "slot": slot,
                    "active": True,
                    "iccid": (await read_iccid(ch, prof))[0],
                    "imsi": net.imsi,
                    "number": net.number,
                    "operator": net.operator,
                    "operator_code": net.operator_code,
                    "carrier": net.spn or net.operator,
                    "country_iso": country_for_operator(net.operator_code)
                    if net.operator_code
                    else None,
                    "registered": net.registered,
                    "roaming": net.roaming,
                    "signal_dbm": net.signal_dbm,
                }
            )
            result["operator"] = net.operator
            result["operator_code"] = net.operator_code
            result["signal_dbm"] = net.signal_dbm
        else:
            result["sim_error"] = sim_error
        result["sims"] = sims
    except (InitError, AtTimeout, AtCommandError) as exc:
        result["error"] = str(exc)
    except TransportClosed as exc:
        result["error"] = f"port closed: {exc}"
    finally:
        await ch.close()
    return result


def unusable(result: dict[str, object]) -> str | None:
    """Why the probed modem cannot send SMS now (with the fix), or None when it can."""
    if result.get("error"):
        return (
            f"{result['error']}; check that the port is the modem's AT interface, the baudrate,"
            " and its power (simhive-agent doctor looks at all of it)"
        )
    sim_error = result.get("sim_error")
    if isinstance(sim_error, str) and sim_error:
        state = sim_error.split(":", 1)[0]
        return f"SIM not ready ({sim_error}); {SIM_FIXES.get(state, 'simhive-agent doctor')}"
    sims = result.get("sims")
    if not isinstance(sims, list) or not any(
        isinstance(s, dict) and s.get("registered") for s in sims
    ):
        return (
            "not registered to a network; check the antenna and coverage, and that the SIM is"
            " activated (simhive-agent doctor tells searching from denied)"
        )
    return None
