"""The short chaos run of the normal suite (CI): a few trials of every kind on one real gateway,
then two sabotages on the same gateway that the bookkeeping must catch, so a green run means
something. The long run is scripts/run-chaos (docs/reliability.md)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosGateway
from tests.chaos.kinds import KINDS, Options
from tests.chaos.ledger import tally
from tests.chaos.run import run_on, summary
from tests.support.procs import ROOT

# A few trials of each kind, short ones: about a minute in all on two cores (the pool kill
# starts a second gateway).
SHORT = {"agent-kill": 3, "server-kill": 2, "proxy": 1, "unplug": 2, "pool-kill": 1}
SHORT_OPTIONS = Options(proxy_seconds=5, load_seconds=0.3)


@pytest.mark.integration
@pytest.mark.timeout(220)
def test_short_chaos_run_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    assert set(SHORT) == set(KINDS), "every kind runs in the short version"
    seed = random.randrange(2**32)
    gw = ChaosGateway(tmp_path).start()
    try:
        results = run_on(gw, SHORT, random.Random(seed), SHORT_OPTIONS, f"ci-{seed:x}")
        report = summary(results)
        print(f"seed {seed}\n{report}")
        for t in results:
            assert t.trials == SHORT[t.kind]
            assert t.messages >= t.trials, (t.kind, report)
            assert t.broken == 0, f"{t.kind}: {t.problems}\n{gw.stack.logs()}"
        pool = next(t for t in results if t.kind == "pool-kill")
        assert pool.figures["kills"] == SHORT["pool-kill"], report

        # Sabotage 1: a client-side double the gateway cannot know about (one text, two ids)
        # must show as sent twice, from the real SMSC log.
        m1 = gw.targets[0]
        twice = {gw.addsms(m1, "sabotage 0.0"): "sabotage 0.0" for _ in range(2)}
        assert gw.wait_final("sabotage ", twice, 30)
        # Sabotage 2: an answered id the database does not have, and one stuck behind an
        # unplugged modem, must show as lost.
        gw.stack.emu.unplug(m1.device.modem_id)
        stuck = {gw.addsms(m1, "sabotage 0.1"): "sabotage 0.1", 10**9: "sabotage 0.2"}
        time.sleep(1)
        judged = tally("sabotage", {**twice, **stuck}, gw.rows("sabotage "),
                       gw.sent_texts("sabotage "))  # fmt: skip
        assert judged.counts["doubled"] == 2 and judged.counts["lost"] == 2, judged
        gw.stack.emu.replug(m1.device.modem_id)
    finally:
        gw.close()


def chaos_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.chaos", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_cli_help_lists_every_kind_and_option() -> None:
    out = chaos_cli("--help")
    assert out.returncode == 0, out.stderr
    for word in [*KINDS, "--trials", "--kinds", "--proxy-seconds", "--seed", "--keep"]:
        assert word in out.stdout


def test_cli_refuses_an_unknown_kind_and_a_trial_count_below_one() -> None:
    out = chaos_cli("--kinds", "agent-kill,nope")
    assert out.returncode == 2 and "unknown kind(s) nope" in out.stderr
    out = chaos_cli("--trials", "0")
    assert out.returncode == 2 and "--trials must be at least 1" in out.stderr
