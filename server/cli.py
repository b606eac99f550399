"""`simhive-server`: run the gateway and administer accounts, devices and tokens.

Every command takes --db, so the admin commands work on the same database as a running server
(SQLite WAL lets them read while it serves; writes queue for the lock for up to 10 s).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from simhive._version import VERSION
from simhive.server.core import limits
from simhive.server.core.agent import AgentSettings
from simhive.server.core.dates import iso
from simhive.server.core.errors import GatewayError
from simhive.server.core.gateway import Gateway
from simhive.server.core.history import HistorySettings
from simhive.server.paths import default_db
from simhive.server.smpp.settings import SmppSettings
from simhive.server.startup import EXIT_STATUS, StartupError
from simhive.server.store.base import StoreError, StoreOpenError
from simhive.server.store.engine import describe, make_store

T = TypeVar("T")

db_option = click.option(
    "--db",
    default=None,
    metavar="PATH|URL",
    help="SQLite database file, or a postgresql:// URL (docs/scaling.md) [default: $SIMHIVE_DB,"
    " $SIMHIVE_DATA/simhive.sqlite3 or ~/.local/share/simhive/simhive.sqlite3].",
)


def _db(db: str | Path | None) -> str | Path:
    return db if db is not None else default_db()


def with_gateway(db: str | Path | None, fn: Callable[[Gateway], Awaitable[T]]) -> T:
    """Open the store, run fn, close the store; domain errors become a clean CLI error."""

    async def main() -> T:
        store = make_store(_db(db))
        await store.open()
        try:
            return await fn(Gateway(store))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StartupError:
        raise  # the group's one line with exit status 2 (StartupErrors)
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    except StoreError as exc:
        raise click.ClickException(f"storage error: {exc}") from None


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


class StartupFailed(click.ClickException):
    exit_code = EXIT_STATUS


class StartupErrors(click.Group):
    """The command group of simhive-server: a start-up failure of any subcommand (its database,
    the listening socket, TLS files) ends as one line with a hint and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StartupError as exc:
            raise StartupFailed(exc.line()) from None


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version, as click.version_option prints it."""
    if value and not ctx.resilient_parsing:
        click.echo(f"simhive-server {VERSION}")
        ctx.exit()


@click.group(cls=StartupErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
def main() -> None:
    """simhive gateway server: SMSGateway24-compatible HTTP API over an embedded database."""


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stderr (token, pass and datajson masked).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=limits.HEADER_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds a request's headers may take to arrive; slower connections are closed.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=limits.BODY_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds a request's body may take to arrive after its headers.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=limits.MAX_CONNECTIONS,
    show_default=True,
    help="Open connections at most; further clients wait in the listen queue.",
)
@click.option(
    "--lease-seconds",
    type=click.IntRange(2, 3600),
    default=AgentSettings().lease_seconds,
    show_default=True,
    help="How long an agent has to commit what it pulled; an uncommitted lease then goes back"
    " to the queue (pool messages to their pool, to leave on another SIM).",
)
@click.option(
    "--long-poll-seconds",
    type=click.IntRange(1, 60),
    default=AgentSettings().long_poll_seconds,
    show_default=True,
    help="How long an agent's pull waits for work before it is answered empty (the agent then"
    " asks again); keep it below the idle timeout of any proxy in between.",
)
@click.option(
    "--agent-offline-seconds",
    type=click.IntRange(5, 86400),
    default=AgentSettings().agent_offline_seconds,
    show_default=True,
    help="A device not seen for this long gets no pool work (its SIMs count as down).",
)
@click.option(
    "--history-keep-days",
    type=click.IntRange(0, 36500),
    default=HistorySettings().keep_days,
    show_default=True,
    help="Days a message keeps its status history after its last change (the message itself"
    " stays); 0 keeps it for ever.",
)
@click.option(
    "--smpp-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve SMPP 3.4 on this port (docs/smpp.md); off unless given.",
)
@click.option(
    "--smpp-host",
    default=SmppSettings().host,
    show_default=True,
    help="Address the SMPP server binds.",
)
@click.option(
    "--smpp-tls/--no-smpp-tls",
    default=False,
    show_default=True,
    help="SMPP over TLS with the --tls-cert/--tls-key of the HTTP server.",
)
@click.option(
    "--smpp-rate",
    type=click.FloatRange(min=0.1),
    default=SmppSettings().rate,
    show_default=True,
    help="submit_sm per second per account; beyond it ESME_RTHROTTLED.",
)
@click.option(
    "--smpp-max-sessions",
    type=click.IntRange(min=1),
    default=SmppSettings().max_sessions,
    show_default=True,
    help="SMPP connections at most; further ones are closed at once.",
)
@click.option(
    "--console-prefix",
    default="",
    show_default=True,
    metavar="PATH",
    help="Serve the web console under this path (e.g. /sms behind a reverse proxy); default /.",
)
@click.option(
    "--metrics-token",
    default=None,
    envvar="SIMHIVE_METRICS_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="Bearer token /metrics requires; without one /metrics answers loopback clients only."
    " Prefer the environment variable: a command line is visible to other local users.",
)
def run(
    db: str | None,
    host: str,
    port: int,
    access_log: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    lease_seconds: int,
    long_poll_seconds: int,
    agent_offline_seconds: int,
    history_keep_days: int,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    smpp_port: int | None,
    smpp_host: str,
    smpp_tls: bool,
    smpp_rate: float,
    smpp_max_sessions: int,
    console_prefix: str,
    metrics_token: str | None,
) -> None:
    """Serve the HTTP API, the web console and /metrics (and SMPP with --smpp-port)."""
    import ssl

    from simhive.server.app import run as run_app
    from simhive.server.console import ConsoleSettings, check_prefix
    from simhive.server.http_server import HttpSettings
    from simhive.server.metrics import MetricsSettings

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert is not None and tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise StartupError(
                f"cannot load the TLS certificate or key: {exc}",
                "--tls-cert takes the PEM certificate (chain), --tls-key its PEM private key",
            ) from None
    if smpp_tls and context is None:
        raise click.UsageError("--smpp-tls needs --tls-cert and --tls-key")
    smpp = smpp_socket = None
    if smpp_port is not None:
        from simhive.server.smpp.server import listen_socket

        smpp = SmppSettings(
            host=smpp_host, port=smpp_port, rate=smpp_rate, max_sessions=smpp_max_sessions
        )
        try:
            smpp_socket = listen_socket(smpp_host, smpp_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen for SMPP on {smpp_host}:{smpp_port}: {exc.strerror or exc}",
                "is another server using the port? choose another with --smpp-port",
            ) from None
    try:
        console_settings = ConsoleSettings(prefix=check_prefix(console_prefix))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--console-prefix") from None
    if metrics_token is not None and len(metrics_token) < 16:
        raise click.BadParameter("at least 16 characters", param_hint="--metrics-token")
    path = _db(db)

    def started(url: str) -> None:  # only once the socket listens
        click.echo(f"simhive-server: database {describe(path)}, listening on {url}", err=True)
        if smpp is not None:
            smpp_scheme = "smpps" if smpp_tls else "smpp"
            click.echo(f"simhive-server: SMPP on {smpp_scheme}://{smpp_host}:{smpp_port}", err=True)

    settings = HttpSettings(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    agent_settings = AgentSettings(
        lease_seconds=lease_seconds,
        long_poll_seconds=long_poll_seconds,
        agent_offline_seconds=agent_offline_seconds,
    )
    try:
        run_app(
            path,
            host=host,
            port=port,
            access_log=access_log,
            ssl_context=context,
            settings=settings,
            agent_settings=agent_settings,
            smpp=smpp,
            smpp_ssl=context if smpp_tls else None,
            smpp_socket=smpp_socket,
            console_settings=console_settings,
            metrics_settings=MetricsSettings(token=metrics_token),
            history=HistorySettings(keep_days=history_keep_days),
            started=started,
        )
    except StoreOpenError:
        raise  # its own cause and hint (a file that is not a database, a read-only one, ...)
    except StoreError as exc:  # the database cannot be opened (PostgreSQL down, bad URL, ...)
        raise StartupError(
            f"cannot open the database: {exc}",
            "check --db / SIMHIVE_DB (is PostgreSQL running, and the URL right?)",
        ) from None


@main.command()
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def demo(state: Path, host: str, port: int) -> None:
    """The whole gateway for a try-out: a demo account with two devices in STATE, the server, two
    emulated dual-SIM modems and an agent driving them; prints the token and curl examples."""
    from simhive.server.demo import run_demo

    sys.exit(run_demo(state, host=host, port=port))


# -- accounts ----------------------------------------------------------------------------------


@main.group()
def account() -> None:
    """Accounts (email + password; each has API tokens)."""


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


def read_password(password: str | None, from_stdin: bool, *, required: bool) -> str | None:
    """The password from --password, --password-stdin or (at a terminal) a prompt.

    Without a terminal there is nobody to ask: a prompt would fail (getpass warns, then click
    aborts), so the command says how to pass the password instead.
    """
    if from_stdin:
        if password is not None:
            raise click.UsageError("give --password or --password-stdin, not both")
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.ClickException("--password-stdin: stdin held no password (empty line)")
        return line
    if password is not None or not required:
        return password
    if not sys.stdin.isatty():
        raise StartupError(
            "no password given, and no terminal to ask for one",
            "pipe it in with --password-stdin, or set SIMHIVE_PASSWORD",
        )
    entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


@account.command("create")
@db_option
@click.option("--email", required=True)
@click.option(
    "--password",
    envvar="SIMHIVE_PASSWORD",
    default=None,
    help="At least 8 characters [default: $SIMHIVE_PASSWORD; else --password-stdin, or asked "
    "for at a terminal].",
)
@password_stdin_option
@click.option("--timezone", default="UTC", show_default=True, help="Zone for dates in answers.")
def account_create(
    db: Path | None, email: str, password: str | None, password_stdin: bool, timezone: str
) -> None:
    """Create an account; prints its id and its first API token (shown once)."""
    password = read_password(password, password_stdin, required=True)
    assert password is not None

    async def go(gw: Gateway) -> dict[str, Any]:
        acc, token = await gw.create_account(email, password, timezone)
        return {"account_id": acc.id, "email": acc.email, "timezone": acc.timezone, "token": token}

    emit(with_gateway(db, go))


@account.command("set")
@db_option
@click.option("--email", required=True)
@click.option("--password", default=None, help="New password (at least 8 characters).")
@password_stdin_option
@click.option("--timezone", default=None, help="Zone for dates in answers, e.g. Europe/Berlin.")
def account_set(
    db: Path | None, email: str, password: str | None, password_stdin: bool, timezone: str | None
) -> None:
    """Change an account's password or time zone (tokens stay valid)."""
    password = read_password(password, password_stdin, required=False)
    if password is None and timezone is None:
        raise click.UsageError("give --password (or --password-stdin) and/or --timezone")

    async def go(gw: Gateway) -> dict[str, Any]:
        acc = await gw.update_account(
            await gw.account_by_email(email), password=password, timezone=timezone
        )
        return {"account_id": acc.id, "email": acc.email, "timezone": acc.timezone}

    emit(with_gateway(db, go))


@account.command("list")
@db_option
def account_list(db: Path | None) -> None:
    """List accounts (tokens are stored hashed and cannot be shown)."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        devices = await gw.store.list_devices()
        return [
            {
                "account_id": a.id,
                "email": a.email,
                "timezone": a.timezone,
                "created": iso(a.created),
                "devices": [d.id for d in devices if d.account_id == a.id],
            }
            for a in await gw.store.list_accounts()
        ]

    emit(with_gateway(db, go))


# -- devices -----------------------------------------------------------------------------------


@main.group()
def device() -> None:
    """Devices (a host agent's modem box); each has its own agent token."""


@device.command("create")
@db_option
@click.option("--email", required=True, help="Owner account.")
@click.option("--title", required=True)
def device_create(db: Path | None, email: str, title: str) -> None:
    """Create a device; prints device_id and the device token for its agent (shown once)."""

    async def go(gw: Gateway) -> dict[str, Any]:
        acc = await gw.account_by_email(email)
        dev, token = await gw.create_device(acc, title)
        return {"device_id": dev.id, "account_id": acc.id, "title": dev.title, "token": token}

    emit(with_gateway(db, go))


@device.command("list")
@db_option
@click.option("--email", default=None, help="Only this account's devices.")
def device_list(db: Path | None, email: str | None) -> None:
    """List devices."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        account_id = (await gw.account_by_email(email)).id if email else None
        return [
            {
                "device_id": d.id,
                "account_id": d.account_id,
                "title": d.title,
                "created": iso(d.created),
                "lastseen": iso(d.lastseen),
                "imei": d.imei,
                "prefix_rules": [list(r) for r in d.prefix_rules],
            }
            for d in await gw.store.list_devices(account_id)
        ]

    emit(with_gateway(db, go))


@device.command("prefix-rules")
@db_option
@click.option("--device-id", type=int, required=True)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    help="PREFIX=REPLACEMENT, applied to numbers sent through the device, e.g. 0=+49. "
    "Repeat for several (first match wins); none clears the rules.",
)
def device_prefix_rules(db: Path | None, device_id: int, rules: tuple[str, ...]) -> None:
    """Set a device's number prefix rewrite rules."""
    parsed: list[tuple[str, str]] = []
    for rule in rules:
        prefix, sep, replacement = rule.partition("=")
        if not sep or not prefix:
            raise click.BadParameter(
                f"expected PREFIX=REPLACEMENT, got {rule!r}", param_hint="--rule"
            )
        parsed.append((prefix, replacement))

    async def go(gw: Gateway) -> dict[str, Any]:
        if await gw.store.device_by_id(device_id) is None:
            raise click.ClickException(f"no device {device_id}")
        await gw.store.set_device_prefix_rules(device_id, parsed)
        return {"device_id": device_id, "prefix_rules": [list(r) for r in parsed]}

    emit(with_gateway(db, go))


# -- tokens ------------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """API and agent tokens."""


@token.command("reset")
@db_option
@click.option("--email", default=None, help="Reset the account token (revokes all others).")
@click.option("--device-id", type=int, default=None, help="Reset this device's agent token.")
def token_reset(db: Path | None, email: str | None, device_id: int | None) -> None:
    """Issue a new token and revoke the old one(s); prints the new token (shown once)."""
    if (email is None) == (device_id is None):
        raise click.UsageError("give exactly one of --email or --device-id")

    async def go(gw: Gateway) -> dict[str, Any]:
        if email is not None:
            acc = await gw.account_by_email(email)
            return {"account_id": acc.id, "token": await gw.issue_token(acc, revoke_others=True)}
        assert device_id is not None
        return {"device_id": device_id, "token": await gw.reset_device_token(device_id)}

    emit(with_gateway(db, go))


# `device set`, `device webhooks`, the deletes, `pool`, `key` (with its SMPP logins), `quota` and
# `db` live in their own modules and register on the groups above.
from simhive.server import (  # noqa: E402, F401
    cli_db,
    cli_delete,
    cli_device,
    cli_keys,
    cli_pool,
)

if __name__ == "__main__":
    # Run as `python -m`, this file is `__main__`, a second copy of the module: the command
    # modules above registered their groups on the real `simhive.server.cli`, so run that one's.
    from simhive.server.cli import main as registered

    registered()
