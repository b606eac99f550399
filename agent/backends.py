"""The one place that turns a [[device]] config into a Modem backend.

Kept tiny on purpose: the runtime only knows agent/modem/base.py's Modem, so a Gammu backend
is one more branch here and nothing else changes.
"""

from __future__ import annotations

from agent.config import ConfigError, DeviceConfig
from agent.modem.base import Modem


def build_modem(cfg: DeviceConfig) -> Modem:
    numbers = {i: n for i, n in enumerate(cfg.numbers) if n}
    if cfg.backend == "at":
        from agent.modem.atmodem import open_at_modem

        if len(cfg.ports) > 1:
            return open_at_modem(
                list(cfg.ports),
                dual_sim="ports",
                profile=cfg.profile,
                baudrate=cfg.baudrate,
                pin=cfg.pin,
                own_numbers=numbers or None,
            )
        return open_at_modem(
            cfg.ports[0],
            profile=cfg.profile,
            dual_sim=cfg.dual_sim,
            baudrate=cfg.baudrate,
            pin=cfg.pin,
            own_numbers=numbers or None,
        )
    raise ConfigError(
        f"device {cfg.name!r}: backend {cfg.backend!r} is not available in this version"
        ' (use backend = "at")'
    )
