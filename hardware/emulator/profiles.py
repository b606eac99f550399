"""Modem families as data: identity strings, boot URCs, noise, ICCID command and quirks.

Each quirk here comes from a real device family (the modem transcripts published by
python-gsmmodem and Gammu); the AT engine reads these fields instead of branching on
profile names, so a new family is one more entry in PROFILES.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# How a profile answers its ICCID command: the command text and the reply line format.
ICCID_FORMATS = {
    "AT+CCID": "{iccid}",  # SIMCom 2G: a bare line
    "AT+QCCID": "+QCCID: {iccid}",
    "AT+ICCID": "+ICCID: {iccid}",
    "AT+CICCID": "+ICCID: {iccid}",
    "AT^ICCID?": "^ICCID: {iccid}",
}


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    revision: str
    ati: tuple[str, ...]
    # ICCID commands this family answers, in the order the real firmware supports them.
    iccid_commands: tuple[str, ...] = ("AT+CCID",)
    # Lines the modem prints after power-up (RDY, Call Ready, +QIND: SMS DONE...).
    boot_urcs: tuple[str, ...] = ()
    # Periodic unsolicited noise until switched off (Huawei ^RSSI until AT^CURC=0).
    noise_urcs: tuple[str, ...] = ()
    noise_interval: float = 0.0
    # ZTE sticks print these inside the AT+CMGS reply, before "+CMGS: <mr>" (python-gsmmodem).
    interleaved_urcs: tuple[str, ...] = ()
    # Wavecom answers AT+CPIN? with +CPIN: READY and no OK.
    cpin_without_ok: bool = False
    # Commands this family rejects with plain ERROR (Wavecom: AT+CGMR).
    rejected_commands: tuple[str, ...] = ()
    # Memories accepted by AT+CPMS per parameter (Wavecom has no "SR" for mem3).
    cpms_mem1: tuple[str, ...] = ("SM", "ME", "SR")
    cpms_mem2: tuple[str, ...] = ("SM", "ME")
    cpms_mem3: tuple[str, ...] = ("SM", "ME", "SR")
    cnmi_ranges: str = "(0-3),(0-3),(0-3),(0-2),(0,1)"
    # Huawei prints LAC/CI unquoted in +CREG; others quote them.
    creg_quoted: bool = True
    # Dual-SIM styles this family supports besides "none" and "ports".
    dual_sim_styles: tuple[str, ...] = ()
    # SIM 2 URCs carry a DS suffix (+CMTIDS, +CDSDS...) on SIMCom/Sierra dual-SIM firmware.
    ds_suffix_urcs: bool = False
    # Seconds a single-standby modem needs to re-register after a SIM switch.
    switch_delay: float = 0.0
    # USSD answers (+CUSD) in 7-bit come as packed septets in hex (Huawei), not as text.
    ussd_packed: bool = False
    # Extra commands that simply answer OK (vendor set-up commands clients send).
    accepted_commands: tuple[str, ...] = ()
    # Boot URCs that announce the SIM (and SMS service) ready: printed only once the SIM is
    # usable, i.e. after a sim_busy window, and replaced by "+CPIN: NOT INSERTED" without a SIM.
    sim_ready_markers: tuple[str, ...] = (
        "+CPIN",
        "Ready",
        "SMS DONE",
        "PB DONE",
        "+QUSIM",
        "+WIND: 4",
    )
    # Printed when an incoming SMS finds the memory full (Huawei ^SMMEMFULL).
    memory_full_urc: str | None = None
    imei_prefix: str = "35"


# The SIM800C-DS is the SIM800C firmware with a second SIM holder: the same identity lines, boot
# URCs and accepted commands, plus AT+CDSDS switching and "DS"-suffixed URCs for SIM 2.
_SIM800C = Profile(
    name="sim800c",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800C",
    revision="Revision:1418B05SIM800C24",
    ati=("SIM800 R14.18",),
    iccid_commands=("AT+CCID",),
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    accepted_commands=("AT+IPR=115200", "AT&W", "AT+CSCLK=0"),
    imei_prefix="86",
)

PROFILES: dict[str, Profile] = {
    "generic": Profile(
        name="generic",
        manufacturer="simhive",
        model="Virtual GSM Modem",
        revision="simhive-emu 1.0",
        ati=("simhive", "Virtual GSM Modem", "Revision: simhive-emu 1.0"),
        iccid_commands=("AT+CCID", "AT+ICCID", "AT+CICCID"),
        boot_urcs=(),
    ),
    "huawei-e173": Profile(
        name="huawei-e173",
        manufacturer="huawei",
        ussd_packed=True,
        model="E173",
        revision="11.126.85.00.209",
        ati=("Manufacturer: huawei", "Model: E173", "Revision: 11.126.85.00.209", "GSM: ERROR"),
        iccid_commands=("AT^ICCID?",),
        boot_urcs=("^BOOT:20934908,0,0,0,75",),
        noise_urcs=("^RSSI:{csq}", "^MODE:3,2", "^SRVST:2"),
        noise_interval=0.5,
        creg_quoted=False,
        memory_full_urc='^SMMEMFULL: "{mem}"',
        # ^PORTSEL picks the port for URCs; Gammu's Huawei post-connect fails without it
        accepted_commands=("AT^U2DIAG=0", "AT^PORTSEL=0", "AT^PORTSEL=1"),
        imei_prefix="86",
    ),
    "sim800c": _SIM800C,
    "sim800c-ds": replace(
        _SIM800C,
        name="sim800c-ds",
        model="SIMCOM_SIM800C-DS",
        revision="Revision:1418B06SIM800C32_DS",
        dual_sim_styles=("cdsds",),
        ds_suffix_urcs=True,
        switch_delay=0.3,
    ),
    "quectel-ec25": Profile(
        name="quectel-ec25",
        manufacturer="Quectel",
        model="EC25",
        revision="EC25EFAR06A06M4G",
        ati=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
        iccid_commands=("AT+QCCID", "AT+CCID"),
        boot_urcs=(
            "RDY",
            "+CFUN: 1",
            "+CPIN: READY",
            "+QUSIM: 1",
            "+QIND: SMS DONE",
            "+QIND: PB DONE",
        ),
        accepted_commands=('AT+QURCCFG="urcport","usbat"',),
        dual_sim_styles=("qdsim",),
        switch_delay=0.5,
        imei_prefix="86",
    ),
    "wavecom": Profile(
        name="wavecom",
        manufacturer="WAVECOM MODEM",
        model=" MULTIBAND  900E  1800 ",
        revision="",
        ati=("WAVECOM MODEM",),
        iccid_commands=("AT+CCID",),
        boot_urcs=("+WIND: 3", "+WIND: 1", "+WIND: 4"),
        cpin_without_ok=True,
        rejected_commands=("AT+CGMR", "AT+CVHU=0"),
        cpms_mem3=("SM", "ME"),
        cnmi_ranges="(0-3),(0-3),(0-3),(0-2),(0-1)",
        accepted_commands=("AT+WIND=0",),
        imei_prefix="35",
    ),
    "zte": Profile(
        name="zte",
        manufacturer="ZTE INCORPORATED",
        model="MF190",
        revision="BD_MF190V1.0.0B05",
        ati=("Manufacturer: ZTE INCORPORATED", "Model: MF190", "Revision: BD_MF190V1.0.0B05"),
        iccid_commands=("AT+ICCID",),
        interleaved_urcs=(
            '+ZDONR: "{operator_short}",{mcc},{mnc},"CS_ONLY","ROAM_OFF"',
            '+ZPASR: "UMTS"',
        ),
        # +ZCDRUN=8 turns the autorun CD-ROM off; Gammu's ZTE post-connect sends it
        accepted_commands=("AT+ZOPRT=5", "AT+ZCDRUN=8", "AT+ZCDRUN=E"),
        imei_prefix="35",
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
