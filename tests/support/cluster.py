"""Several `simhive-server` processes on one PostgreSQL database, behind a load balancer, with the
emulator and agents of GatewayStack (docs/scaling.md's layout, on loopback).

    stack = ClusterStack(tmp_path, db_url=url, server_count=3, modems=3, agent_count=3).start()

With `via_balancer` (the default) every agent goes through the balancer, which spreads their
connections over the servers and moves them to a live one when theirs dies; without it agent i
talks to one server only.
`api(..., server=k)` sends a request to server k; `kill9(k)` kills one server.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.support.balancer import Balancer
from tests.support.proc import Proc
from tests.support.procs import console_script, free_port, wait_port
from tests.support.stack import ApiError, Device, GatewayStack


@dataclass
class ClusterStack(GatewayStack):
    db_url: str = ""
    server_count: int = 3
    via_balancer: bool = True
    first_agent_server: int = 0  # without the balancer: agent i talks to server (this + i) % N
    servers: list[Proc] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    balancer: Balancer | None = None

    @property
    def url(self) -> str:
        return self.server_url(0)

    def server_url(self, k: int) -> str:
        return f"http://127.0.0.1:{self.ports[k]}"

    @property
    def agent_url(self) -> str:
        assert self.balancer is not None
        return f"http://127.0.0.1:{self.balancer.port}"

    def agent_server(self, index: int) -> str:
        if self.via_balancer:
            return self.agent_url
        return self.server_url((self.first_agent_server + index) % self.server_count)

    def start_server(self) -> None:
        if not self.servers:
            self.ports = [free_port() for _ in range(self.server_count)]
            for k, port in enumerate(self.ports):
                argv = [console_script("simhive-server"), "run", "--db", self.db_url,
                        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                        *self.server_args]  # fmt: skip
                self.servers.append(Proc(f"server-{k}", argv, log=self.root / f"server-{k}.log"))
        for proc in self.servers:
            if not proc.alive():
                proc.start()
        for proc, port in zip(self.servers, self.ports, strict=True):
            try:
                wait_port(port, timeout=30)
            except TimeoutError:
                raise AssertionError(f"{proc.name} did not listen:\n{proc.tail()}") from None
        self.server = self.servers[0]
        if self.balancer is None:
            self.balancer = Balancer(self.ports)

    def write_agent_config(self, index: int = 0) -> Any:
        path = super().write_agent_config(index)
        text = path.read_text().replace(
            f'server = "{self.agent_url}"', f'server = "{self.agent_server(index)}"', 1
        )
        path.write_text(text)
        return path

    def kill9(self, k: int) -> None:
        self.servers[k].kill9()

    def close(self) -> None:
        for proc in self.servers[1:]:
            proc.stop()
        super().close()
        if self.balancer is not None:
            self.balancer.close()

    def processes(self) -> list[Proc]:
        return [p for p in (*self.servers, self.emulator, *self.agents) if p is not None]

    def cli(self, *args: str) -> dict[str, Any]:
        argv = [console_script("simhive-server"), *args, "--db", self.db_url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def set_device_settings(self, device: Device, values: dict[str, object]) -> None:
        from simhive.server.store.engine import make_store

        async def go() -> None:
            store = make_store(self.db_url)
            await store.open()
            try:
                await store.update_device_settings(device.device_id, values)
            finally:
                await store.close()

        asyncio.run(go())

    def sim_ready(self) -> dict[tuple[int, int], tuple[bool, str]]:
        import asyncpg

        async def go() -> list[Any]:
            conn = await asyncpg.connect(self.db_url)
            try:
                sql = "SELECT device_id, slot, ready, reason FROM sim_ready"
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        rows = asyncio.run(go())
        return {(int(d), int(s)): (bool(r), str(why)) for d, s, r, why in rows}

    def api(  # `server` picks which one
        self,
        method: str,
        *,
        check: bool = True,
        timeout: float = 30,
        server: int = 0,
        **params: Any,
    ) -> Any:
        fields = {"token": self.token, **{k: str(v) for k, v in params.items()}}
        req = urllib.request.Request(
            f"{self.server_url(server)}/getdata/{method}",
            data=urllib.parse.urlencode(fields).encode(),
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
        if check and answer.get("error") != 0:
            raise ApiError(f"{method} {params}: {answer}")
        return answer
