"""The one place that turns a [[device]] config into a Modem backend.

Kept small on purpose: the runtime only knows agent/modem/base.py's Modem (plus the optional
`activate_slot` capability and the `active_slot` and `connection_epoch` attributes the
dispatcher uses to visit the other SIM of a single-standby modem), so a Gammu backend is one
more branch here and nothing else changes.
"""

from __future__ import annotations

from simhive.agent.config import ConfigError, DeviceConfig
from simhive.agent.modem.atmodem import AtModem, open_at_modem
from simhive.agent.modem.base import (
    EventHandler,
    Modem,
    ModemIdentity,
    ModemState,
    SendResult,
    SimInfo,
)
from simhive.agent.modem.ussd import UssdReply


class SingleStandbyAtModem:
    """An AtModem with two SIMs behind one radio, plus `activate_slot`.

    The AT backend switches SIM only inside `send`; received SMS and status reports for the
    inactive SIM wait in the network until it is active again. The dispatcher, which owns the
    SIM schedule, uses this to visit the idle SIM. Everything else is delegated unchanged.
    """

    def __init__(self, modem: AtModem) -> None:
        self._m = modem

    @property
    def identity(self) -> ModemIdentity:
        return self._m.identity

    @identity.setter
    def identity(self, value: ModemIdentity) -> None:
        self._m.identity = value

    @property
    def slots(self) -> list[int]:
        return self._m.slots

    @property
    def state(self) -> ModemState:
        return self._m.state

    @property
    def state_reason(self) -> str:
        return self._m.state_reason

    @property
    def connection_epoch(self) -> int:
        """Bumped on every (re)connect (agent/modem/events.py)."""
        return self._m.connection_epoch

    @property
    def active_slot(self) -> int:
        """The SIM the modem has active (queried at init; the dispatcher starts from it)."""
        return self._m.active_slot

    async def start(self, on_event: EventHandler) -> None:
        await self._m.start(on_event)

    async def stop(self) -> None:
        await self._m.stop()

    async def sim_info(self) -> list[SimInfo]:
        return await self._m.sim_info()

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        return await self._m.send(number, text, slot=slot, status_report=status_report)

    async def ussd(self, code: str, *, slot: int = 0, wait: float = 30.0) -> UssdReply:
        return await self._m.ussd(code, slot=slot, wait=wait)

    async def activate_slot(self, slot: int) -> None:
        # AtModem's own: under the lock send() holds, and it raises only SendError (a timeout
        # or a closed port during the switch is RETRY), as the Modem interface promises.
        await self._m.activate_slot(slot)


def build_modem(cfg: DeviceConfig) -> Modem:
    numbers = {i: n for i, n in enumerate(cfg.numbers) if n}
    if cfg.backend == "at":
        if len(cfg.ports) > 1:
            return open_at_modem(
                list(cfg.ports),
                dual_sim="ports",
                profile=cfg.profile,
                baudrate=cfg.baudrate,
                pin=cfg.pin,
                own_numbers=numbers or None,
            )
        modem = open_at_modem(
            cfg.ports[0],
            profile=cfg.profile,
            dual_sim=cfg.dual_sim,
            baudrate=cfg.baudrate,
            pin=cfg.pin,
            own_numbers=numbers or None,
        )
        if cfg.single_standby and isinstance(modem, AtModem):
            return SingleStandbyAtModem(modem)
        return modem
    if cfg.backend == "gammu":
        return _build_gammu(cfg, numbers.get(0))
    raise ConfigError(
        f"device {cfg.name!r}: backend {cfg.backend!r} is not available in this version"
        ' (use backend = "at" or "gammu")'
    )


def _build_gammu(cfg: DeviceConfig, own_number: str | None) -> Modem:
    # Imported here: python-gammu is an optional extra, and an AT-only agent must not need it.
    from simhive.agent.modem.gammu_backend import open_gammu_modem
    from simhive.agent.modem.gammu_config import GammuConfigError, GammuUnavailable

    try:
        return open_gammu_modem(
            port=cfg.ports[0] if cfg.ports else None,
            connection=cfg.connection or (None if cfg.gammurc else f"at{cfg.baudrate}"),
            gammurc=cfg.gammurc,
            gammu_section=cfg.gammu_section,
            pin=cfg.pin,
            own_number=own_number,
        )
    except (GammuUnavailable, GammuConfigError) as exc:
        raise ConfigError(f"device {cfg.name!r}: {exc}") from None
