"""Settings of the SMPP server, declared once: the CLI's --smpp-* options default to these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SmppSettings:
    """Limits of the SMPP server (docs/smpp.md, "Limits"); the CLI's --smpp-* options set the
    first ones, the rest are fixed here."""

    host: str = "127.0.0.1"
    port: int = 2775
    # submit_sm (and submit_multi) per second per account, over all its sessions; beyond it
    # ESME_RTHROTTLED. Bursts up to one second's worth pass at once.
    rate: float = 100.0
    max_sessions: int = 256
    binds_per_account: int = 16
    # Requests of one session being handled at once (its window); more get ESME_RTHROTTLED.
    window: int = 100
    # deliver_sm sent to one session and not yet answered.
    deliver_window: int = 10
    bind_timeout: float = 10.0
    idle_timeout: float = 120.0
    read_timeout: float = 10.0
    write_timeout: float = 30.0
    response_timeout: float = 30.0
    # How often the server looks for new outbox rows (receipts and incoming SMS).
    poll_seconds: float = 0.5
    # How often messages whose validity_period ran out are looked for.
    expiry_check_seconds: float = 5.0
    # Parts of a concatenated message that never got all their parts are forgotten after this;
    # delivered outbox rows are kept this long.
    parts_keep_seconds: int = 24 * 3600
    outbox_keep_seconds: int = 7 * 24 * 3600
