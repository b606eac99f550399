"""SIM cards of the emulated modems: identities generated deterministically from a seed.

Numbers are unique within one emulator run and reproducible for a given seed, so tests can
refer to them across restarts and several emulators with different seeds do not collide.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Operator:
    code: str  # MCCMNC as AT+COPS numeric format prints it
    name: str  # long alphanumeric name
    short: str
    number_prefix: str  # E.164 prefix of its mobile numbers
    smsc: str


OPERATORS: tuple[Operator, ...] = (
    Operator("26201", "Telekom.de", "TDG", "+49151", "+491710760000"),
    Operator("26202", "Vodafone.de", "VF-DE", "+49152", "+491722270333"),
    Operator("26203", "o2 - de", "o2-de", "+49176", "+491760000443"),
    Operator("23415", "Vodafone UK", "VF-UK", "+44774", "+447785016005"),
)


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass
class Sim:
    """One SIM card; mutable because tests flip roaming and signal while the emulator runs."""

    slot: int
    number: str
    iccid: str
    imsi: str
    home: Operator
    serving: Operator
    roaming: bool = False
    csq: int = 21  # rssi index as AT+CSQ prints it: -113 + 2*21 = -71 dBm
    present: bool = True
    lac: int = 0x4CA
    ci: int = 0x81DE445
    # Scripted USSD answers, code -> text (hardware/emulator/ussd.py).
    ussd: dict[str, str] = field(default_factory=dict)

    def set_roaming(self, roaming: bool, operator_code: str | None = None) -> None:
        """Roaming means a foreign serving network: +COPS and the MCC (country) change too."""
        self.roaming = roaming
        if not roaming:
            self.serving = self.home
            return
        choices = [op for op in OPERATORS if op.code[:3] != self.home.code[:3]]
        if operator_code is not None:
            choices = [op for op in OPERATORS if op.code == operator_code] or choices
        self.serving = choices[0]

    def describe(self) -> dict[str, object]:
        return {
            "slot": self.slot,
            "number": self.number,
            "iccid": self.iccid,
            "imsi": self.imsi,
            "operator": self.serving.name,
            "operator_code": self.serving.code,
            "home_operator_code": self.home.code,
            "roaming": self.roaming,
            "signal_csq": self.csq,
            "signal_dbm": -113 + 2 * self.csq if self.csq <= 31 else None,
            "present": self.present,
            "ussd": dict(self.ussd),
        }


class SimFactory:
    """Hands out SIMs with unique numbers, ICCIDs and IMSIs; deterministic per seed."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._numbers: set[str] = set()

    def imei(self, prefix: str) -> str:
        body = prefix + "".join(str(self._rng.randrange(10)) for _ in range(14 - len(prefix)))
        return body + luhn_digit(body)

    def make(self, slot: int, index: int) -> Sim:
        home = OPERATORS[index % 3]  # the three German networks; roaming is set per test
        while True:
            subscriber = "".join(str(self._rng.randrange(10)) for _ in range(7))
            number = home.number_prefix + subscriber
            if number not in self._numbers:
                self._numbers.add(number)
                break
        # ICCID: 89 (telecom) 49 (Germany) issuer, account, Luhn check digit; 19 digits + check.
        body = "8949" + home.code[-2:] + "".join(str(self._rng.randrange(10)) for _ in range(13))
        iccid = body + luhn_digit(body)
        imsi = home.code + "".join(str(self._rng.randrange(10)) for _ in range(15 - len(home.code)))
        return Sim(
            slot=slot,
            number=number,
            iccid=iccid,
            imsi=imsi,
            home=home,
            serving=home,
            csq=self._rng.randrange(12, 28),
        )
