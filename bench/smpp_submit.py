"""SMPP submit_sm per second with a window of 10, against addalotofsms of the same messages.

One real `simhive-server run --smpp-port` process takes the same N messages (pool `all`, one
recipient each, GSM-7 text) twice per round: over SMPP, one bound transceiver session keeping 10
submit_sm in flight (the window ESMEs commonly use), and over the compat API, as addalotofsms
batches of 1,000 from one HTTP client. Rounds alternate the order (SMPP first, then HTTP first),
and every message is checked to be stored. The SMPP client is simhive's own codec over asyncio
(the server is what is measured; its CPU time per message is reported from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench._common import BIN, cli, cpu_seconds, free_port, process, report
from simhive.server.smpp.pdu import HEADER_LEN, Cmd, Pdu, decode, decode_header, encode

BATCH = 1000
WINDOW = 10


def messages(n: int, offset: int) -> list[tuple[str, str]]:
    return [(f"+49157{(offset + i) % 10**8:08d}", f"Your code is {(offset + i) % 10**6:06d}")
            for i in range(n)]  # fmt: skip


async def _read(reader: asyncio.StreamReader) -> Pdu:
    header = await reader.readexactly(HEADER_LEN)
    return decode(header + await reader.readexactly(decode_header(header)[0] - HEADER_LEN))


async def smpp_run(
    port: int, system_id: str, password: str, batch: list[tuple[str, str]], registered: int = 0
) -> float:
    """Seconds to get every submit_sm of `batch` answered, WINDOW in flight."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode(Pdu(Cmd.BIND_TRANSCEIVER, 1, 0,
                            {"system_id": system_id, "password": password})))  # fmt: skip
    if (await _read(reader)).status != 0:
        raise RuntimeError("bind refused")
    window = asyncio.Semaphore(WINDOW)
    done = asyncio.Event()
    answered = 0

    async def receive() -> None:
        nonlocal answered
        while answered < len(batch):
            pdu = await _read(reader)
            if pdu.command_id == Cmd.SUBMIT_SM_RESP:
                if pdu.status != 0:
                    raise RuntimeError(f"submit_sm refused: 0x{pdu.status:02x}")
                answered += 1
                window.release()
        done.set()

    start = time.perf_counter()
    receiver = asyncio.create_task(receive())
    for seq, (to, text) in enumerate(batch, start=2):
        await window.acquire()
        fields = {"destination_addr": to, "short_message": text.encode("ascii"),
                  "registered_delivery": registered}  # fmt: skip
        writer.write(encode(Pdu(Cmd.SUBMIT_SM, seq, 0, fields)))  # type: ignore[arg-type]
    await receiver
    elapsed = time.perf_counter() - start
    writer.write(encode(Pdu(Cmd.UNBIND, len(batch) + 2)))
    await writer.drain()
    writer.close()
    return elapsed


async def http_run(url: str, token: str, batch: list[tuple[str, str]]) -> float:
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for i in range(0, len(batch), BATCH):
            smsdata = [{"sendto": to, "body": text, "pool": "all"}
                       for to, text in batch[i : i + BATCH]]  # fmt: skip
            payload = {"token": token, "smsdata": smsdata}
            async with session.post(f"{url}/getdata/addalotofsms", json=payload) as r:
                data = await r.json()
                if data.get("error") != 0:
                    raise RuntimeError(f"batch rejected: {data}")
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000, help="per side and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    parser.add_argument(
        "--registered-delivery", action="store_true",
        help="submit_sm asking for receipts (the message and its receipt row in one commit)",
    )  # fmt: skip
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    n, rounds = (200, 2) if args.quick else (args.messages, args.rounds)
    registered = 1 if args.registered_delivery else 0
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.sqlite3"
        email = "bench@example.com"
        account = cli("account", "create", "--db", str(db), "--email", email,
                      "--password", "benchmark-password")  # fmt: skip
        # The console script: `python -m simhive.server.cli` lacks the commands that other
        # modules register on the group (key, pool, device set). The key's own rate is set
        # to the highest, as --smpp-rate is: the benchmark measures the store, not a limit.
        made = subprocess.run(
            [str(BIN / "simhive-server"), "key", "create", "--db", str(db), "--email", email,
             "--name", "bench", "--scope", "send", "--scope", "read", "--rate-per-minute",
             "100000", "--smpp", "--smpp-system-id", "bench"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        credential = json.loads(made.stdout)
        port, smpp_port = free_port(), free_port()
        argv = [sys.executable, "-m", "simhive.server.cli", "run", "--db", str(db),
                "--port", str(port), "--no-access-log", "--smpp-port", str(smpp_port),
                "--smpp-rate", "1000000"]  # fmt: skip
        spent = {"smpp": 0.0, "http": 0.0}
        cpu = {"smpp": 0.0, "http": 0.0}
        with process(argv, port, workdir / "server.log") as proc:
            url, token = f"http://127.0.0.1:{port}", str(account["token"])
            password = str(credential["smpp_password"])
            # Warm-up outside the timing: first bind (scrypt), first batch.
            asyncio.run(smpp_run(smpp_port, "bench", password, messages(20, 0)))
            asyncio.run(http_run(url, token, messages(20, 0)))
            for r in range(rounds):
                order = ("smpp", "http") if r % 2 == 0 else ("http", "smpp")
                for side in order:
                    batch = messages(n, (2 * r + (side == "http")) * n)
                    before = cpu_seconds(proc.pid)
                    if side == "smpp":
                        spent[side] += asyncio.run(
                            smpp_run(smpp_port, "bench", password, batch, registered)
                        )
                    else:
                        spent[side] += asyncio.run(http_run(url, token, batch))
                    cpu[side] += cpu_seconds(proc.pid) - before
        with sqlite3.connect(db) as check:
            stored = check.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        if stored != 2 * n * rounds + 40:
            raise RuntimeError(f"expected {2 * n * rounds + 40} stored messages, found {stored}")
    total = n * rounds
    smpp_rate, http_rate = total / spent["smpp"], total / spent["http"]
    ratio = smpp_rate / http_rate
    report(
        f"SMPP submit_sm, window {WINDOW}, vs addalotofsms ({rounds} rounds x {n} messages)",
        [
            ("simhive SMPP submit_sm (one session, window 10)", smpp_rate, "msg/s"),
            ("simhive addalotofsms (batches of 1,000)", http_rate, "msg/s"),
            ("ratio submit_sm / addalotofsms", ratio, "x"),
            ("server CPU per 1,000 messages, SMPP", cpu["smpp"] / total * 1e6, "ms"),
            ("server CPU per 1,000 messages, addalotofsms", cpu["http"] / total * 1e6, "ms"),
        ],
    )
    return {"smpp": smpp_rate, "http": http_rate, "ratio": ratio}


if __name__ == "__main__":
    main()
