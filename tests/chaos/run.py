"""Run chaos trials and report the figures: `python -m tests.chaos` (scripts/run-chaos).

Each kind runs its trials one after the other on one shared gateway; after each trial the runner
waits (up to TRIAL_WAIT) for that trial's messages to end, and after the last trial of a kind for
every message of the kind (up to SETTLE_WAIT, longer than a lease and the agent's report
timeout), then judges them all. Trials that left messages behind are not retried or hidden:
those messages are judged at the end like all others.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.chaos.harness import ChaosGateway
from tests.chaos.kinds import KINDS, Kind, Options
from tests.chaos.ledger import Tally, tally

TRIAL_WAIT = 30.0
# Longer than the server's lease (120 s: a lease whose answer a dead agent never journaled can
# wait that long when the agent's next pull does not list it) and the agent's 60 s report
# timeout: a message not final after this is judged as it stands.
SETTLE_WAIT = 200.0

COLUMNS = ("trials", "messages", "delivered", "unknown", "failed", "lost", "doubled", "other")


def run_kind(
    gw: ChaosGateway,
    kind: Kind,
    trials: int,
    rng: random.Random,
    options: Options,
    tag: str,
    log: Callable[[str], None] = print,
) -> Tally:
    prefix = f"{tag} {kind.name} "
    gw = gw.for_pools() if kind.pool else gw
    figures_before = collections.Counter(gw.figures)
    gw.set_latency(kind.latency)
    answered: dict[int, str] = {}
    started = time.monotonic()
    for n in range(trials):
        got = kind.trial(gw, f"{prefix}{n}", rng, options)
        answered.update(got)
        if not gw.wait_final(f"{prefix}{n}.", got, TRIAL_WAIT):
            log(f"  {kind.name} trial {n}: not every message final after {TRIAL_WAIT:.0f} s")
    gw.wait_final(prefix, answered, SETTLE_WAIT)
    out = tally(kind.name, answered, gw.rows(prefix), gw.sent_texts(prefix))
    out.trials = trials
    out.seconds = time.monotonic() - started
    # Zeros kept: "leased to the killed agent 0" is a figure too.
    out.figures = collections.Counter({k: v - figures_before[k] for k, v in gw.figures.items()})
    return out


def run(
    root: Path,
    kinds: Sequence[str],
    trials: int | None = None,
    seed: int | None = None,
    options: Options | None = None,
    log: Callable[[str], None] = print,
) -> list[Tally]:
    """Start a gateway under root, run each kind (its default trial count unless `trials`),
    stop the gateway; one Tally per kind."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    log(f"seed {seed}; gateway and logs in {root}")
    gw = ChaosGateway(root)
    if not all(KINDS[n].pool for n in kinds):
        gw.start()  # the pool kinds start their own gateway (ChaosGateway.for_pools)
    try:
        plan = {n: KINDS[n].default_trials if trials is None else trials for n in kinds}
        return run_on(gw, plan, random.Random(seed), options or Options(), f"chaos-{seed:x}", log)
    finally:
        gw.close()


def run_on(
    gw: ChaosGateway,
    plan: Mapping[str, int],
    rng: random.Random,
    options: Options,
    tag: str,
    log: Callable[[str], None] = print,
) -> list[Tally]:
    """Run {kind: trials} in order on a started gateway; one Tally per kind."""
    results: list[Tally] = []
    for name, trials in plan.items():
        kind = KINDS[name]
        log(f"{name}: {trials} trials ({kind.what})")
        results.append(run_kind(gw, kind, trials, rng, options, tag, log))
        log(render([results[-1]], header=False))
    return results


def render(results: Sequence[Tally], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"{'kind':<12}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'seconds':>10}")
    for t in results:
        other = t.counts["misreported"] + t.counts["unfinished"]
        figures = (t.trials, t.messages, t.counts["delivered"], t.counts["unknown"],
                   t.counts["failed"], t.counts["lost"], t.counts["doubled"], other)  # fmt: skip
        lines.append(f"{t.kind:<12}" + "".join(f"{f:>10}" for f in figures) + f"{t.seconds:>10.1f}")
    return "\n".join(lines)


def summary(results: Sequence[Tally]) -> str:
    total = Tally("total")
    for t in results:
        total.add(t)
    lines = [render([*results, total])]
    lines.append(
        f"outcome-unknown that did reach the network (once): {total.unknown_sent}; "
        f"stored for requests whose answer never arrived (not counted above): {total.unanswered}"
    )
    for t in results:
        if t.figures:
            lines.append(f"{t.kind}: " + "; ".join(f"{k} {v}" for k, v in t.figures.items()))
    lines += [f"  {p}" for p in total.problems[:50]]
    if len(total.problems) > 50:
        lines.append(f"  ... and {len(total.problems) - 50} more")
    return "\n".join(lines)


def parse_kinds(values: Sequence[str]) -> list[str]:
    names = [n for v in values for n in v.split(",") if n]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    kinds = "; ".join(f"{k.name} ({k.default_trials}): {k.what}" for k in KINDS.values())
    p = argparse.ArgumentParser(
        prog="scripts/run-chaos",
        description="Crash, cut and unplug a real gateway (server, agent, emulated modems) and "
        "count per message what was lost, sent twice or left outcome-unknown. Exits 1 if any "
        "message was lost, sent twice, reported failed although it went out, or never ended.",
    )
    p.add_argument(
        "--trials", type=int, metavar="N", help="trials of every kind (default: each kind's own)"
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        default=list(KINDS),
        metavar="KIND",
        help=f"kinds to run, in order, space or comma separated (default: all). {kinds}",
    )
    p.add_argument(
        "--proxy-seconds",
        type=float,
        default=Options().proxy_seconds,
        metavar="S",
        help="how long each proxy trial cuts the link (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="run in DIR and keep it (databases, journal, logs); default: a temp dir",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        kinds = parse_kinds(args.kinds)
    except argparse.ArgumentTypeError as exc:
        parser().error(str(exc))
    if args.trials is not None and args.trials < 1:
        parser().error("--trials must be at least 1")
    options = Options(proxy_seconds=args.proxy_seconds)
    print(f"simhive chaos on {os.cpu_count()} cores, {platform.platform()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    started = time.monotonic()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(args.keep, kinds, args.trials, args.seed, options)
    else:
        with tempfile.TemporaryDirectory(prefix="simhive-chaos-") as tmp:
            results = run(Path(tmp), kinds, args.trials, args.seed, options)
    print(summary(results))
    broken = sum(t.broken for t in results)
    print(f"wall time {time.monotonic() - started:.0f} s; "
          + ("PROMISE BROKEN" if broken else "nothing lost, nothing sent twice"))  # fmt: skip
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
