"""`kitaru server ...` and `kitaru auth ...` (loaded by the kitaru CLI through entry points)."""

from __future__ import annotations

import dataclasses
import ipaddress
import sys
import time
from datetime import UTC, datetime
from typing import Any

import typer

from kitaru.cli.output import Format, OutputOption, print_json
from kitaru_core.errors import InvalidValueError

from .scopes import MEANINGS, SCOPES

server_app = typer.Typer(name="server", help="Run the kitaru server.", no_args_is_help=True)
auth_app = typer.Typer(name="auth", help="Service accounts and API keys.", no_args_is_help=True)
accounts_app = typer.Typer(help="Service accounts (who API keys belong to).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
auth_app.add_typer(accounts_app, name="service-accounts")
auth_app.add_typer(keys_app, name="api-keys")

DEFAULT_PORT = 8237


@server_app.callback()
def server_group() -> None:
    """Run the kitaru server: a REST API over this stack's registry and artifact store."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@server_app.command("start")
def start(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    stack: str = typer.Option(None, "--stack", help="Serve this stack (default: the active one)."),
    registry: str = typer.Option(
        None, "--registry", help="Serve this registry instead of the stack's: postgresql://... or "
        "a SQLite file."),
    single_user: bool = typer.Option(
        False, "--single-user", help="No API keys: every request is a local admin. Only on "
        "127.0.0.1."),
    max_body: int = typer.Option(1024 * 1024, "--max-body-bytes", min=1024,
                                 help="Largest request body accepted."),
    recovery_interval: float = typer.Option(
        10.0, "--recovery-interval", min=0.0, help="Seconds between sweeps that continue "
        "executions whose runner died (0: no recovery by this server)."),
    output: Format = OutputOption,
) -> None:
    """Serve the REST API until SIGTERM or Ctrl-C (in-flight requests finish first)."""
    from .app import create_app
    from .settings import ServerSettings

    if single_user and not _is_loopback(host):
        raise InvalidValueError(
            f"--single-user serves without authentication, so it listens only on 127.0.0.1, not "
            f"{host}; drop --host or create an API key (`kitaru auth api-keys create`)")
    settings = ServerSettings(stack=stack, registry=registry, single_user=single_user,
                              max_body_bytes=max_body, recovery_seconds=recovery_interval)
    app = create_app(settings)
    state = app.state.kitaru
    mode = ("single-user mode: no authentication, listening on loopback only" if single_user
            else "API keys required (`kitaru auth api-keys create`)")
    if output == Format.json:  # one line a supervisor can parse, before serving
        print_json({"url": f"http://{host}:{port}", "stack": state.stack.name,
                    "single_user": single_user, "dashboard": f"http://{host}:{port}/dashboard/"})
        sys.stdout.flush()
    else:
        typer.echo(f"kitaru server on http://{host}:{port} for stack {state.stack.name!r}; {mode}",
                   err=True)
        typer.echo(f"dashboard: http://{host}:{port}/dashboard/", err=True)
    import signal

    import uvicorn

    # uvicorn finishes in-flight requests on SIGTERM/SIGINT, then raises the signal again
    # with the handler it found installed: this one makes that a clean exit (status 0).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False,
                timeout_graceful_shutdown=30)


@server_app.command("openapi")
def openapi(
    output_file: str = typer.Option(None, "--output", "-o", help="Write to this file (default: "
                                    "print). The repository publishes docs/openapi.json."),
) -> None:
    """The REST API's OpenAPI schema as JSON (what `/api/v1/openapi.json` serves)."""
    from .app import openapi_json

    text = openapi_json()
    if output_file is None:
        typer.echo(text, nl=False)
        return
    from pathlib import Path

    Path(output_file).write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output_file}", err=True)


def _store() -> Any:
    from kitaru_core.stack import get_stack

    from .keys import KeyStore

    return KeyStore(get_stack().registry)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(obj: Any, output: Format, **extra: Any) -> None:
    data = dict(dataclasses.asdict(obj), **extra)
    if output == Format.json:
        print_json(data)
        return
    for name, value in data.items():
        if name.endswith("_at"):
            value = _when(value)
        typer.echo(f"{name:12} {value}")


# -- service accounts -----------------------------------------------------------------------
@accounts_app.command("create")
def account_create(name: str, description: str = typer.Option("", "--description", "-d"),
                   output: Format = OutputOption) -> None:
    """Create a service account."""
    _show(_store().create_account(name, description=description), output)


@accounts_app.command("list")
def account_list(output: Format = OutputOption) -> None:
    """List service accounts."""
    accounts = _store().list_accounts()
    if output == Format.json:
        print_json([dataclasses.asdict(a) for a in accounts])
        return
    if not accounts:
        typer.echo("no service accounts; `kitaru auth service-accounts create NAME`")
    for a in accounts:
        typer.echo(f"{a.name:24} {'active' if a.active else 'inactive':9} {a.description}")


@accounts_app.command("show")
def account_show(name: str, output: Format = OutputOption) -> None:
    """Show a service account and how many keys it has."""
    store = _store()
    account = store.get_account(name)
    _show(account, output, keys=len(store.list_keys(name)))


@accounts_app.command("update")
def account_update(
    name: str, description: str = typer.Option(None, "--description", "-d"),
    active: bool = typer.Option(None, "--active/--inactive",
                                help="An inactive account's keys are refused."),
    output: Format = OutputOption,
) -> None:
    """Change a service account's description, or (de)activate it."""
    _show(_store().update_account(name, description=description, active=active), output)


@accounts_app.command("delete")
def account_delete(name: str, output: Format = OutputOption) -> None:
    """Delete a service account and all its API keys."""
    gone = _store().delete_account(name)
    if output == Format.json:
        print_json({"deleted": name, "keys_deleted": gone})
    else:
        typer.echo(f"deleted service account {name} and its {gone} API key(s)")


# -- API keys ---------------------------------------------------------------------------------
def _expiry(expires_in: str | None) -> float | None:
    if expires_in is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(expires_in) < 2 or expires_in[-1] not in units or not expires_in[:-1].isdigit() \
            or int(expires_in[:-1]) < 1:
        raise InvalidValueError(
            f"--expires-in {expires_in!r} is not a duration; give a whole number of m, h or d, "
            "such as 90d")
    return time.time() + int(expires_in[:-1]) * units[expires_in[-1]]


@keys_app.command("create")
def key_create(
    account: str = typer.Argument(..., help="The service account the key acts as."),
    scope: str = typer.Option("read", "--scope", help="; ".join(f"{s}: {MEANINGS[s]}" for s in SCOPES)),
    description: str = typer.Option("", "--description", "-d"),
    expires_in: str = typer.Option(None, "--expires-in", help="e.g. 30d, 12h; default: never"),
    output: Format = OutputOption,
) -> None:
    """Create an API key; its token is printed once and never again."""
    key, token = _store().create_key(account, scope=scope, description=description,
                                     expires_at=_expiry(expires_in))
    if output == Format.json:
        print_json(dict(dataclasses.asdict(key), token=token))
        return
    typer.echo(f"API key {key.key_id} ({key.scope}) for {key.account}, expires {_when(key.expires_at)}")
    typer.echo(token)
    typer.echo("Store it now: it is not shown again.", err=True)


@keys_app.command("list")
def key_list(account: str = typer.Option(None, "--account"), output: Format = OutputOption) -> None:
    """List API keys (never their tokens)."""
    keys = _store().list_keys(account)
    if output == Format.json:
        print_json([dataclasses.asdict(k) for k in keys])
        return
    if not keys:
        typer.echo("no API keys; `kitaru auth api-keys create ACCOUNT --scope read`")
    for k in keys:
        state = "expired" if k.expired else f"expires {_when(k.expires_at)}"
        typer.echo(f"{k.key_id}  {k.account:20} {k.scope:9} {state:28} {k.description}")


@keys_app.command("show")
def key_show(key_id: str, output: Format = OutputOption) -> None:
    """Show an API key (never its token)."""
    key = _store().get_key(key_id)
    _show(key, output, expired=key.expired)


@keys_app.command("rotate")
def key_rotate(key_id: str, output: Format = OutputOption) -> None:
    """Give a key a new token; the old one stops working."""
    key, token = _store().rotate_key(key_id)
    if output == Format.json:
        print_json(dict(dataclasses.asdict(key), token=token))
        return
    typer.echo(f"API key {key.key_id} rotated; the old token no longer works")
    typer.echo(token)


@keys_app.command("delete")
def key_delete(key_id: str, output: Format = OutputOption) -> None:
    """Delete an API key; requests with it are refused from then on."""
    _store().delete_key(key_id)
    if output == Format.json:
        print_json({"deleted": key_id})
    else:
        typer.echo(f"deleted API key {key_id}")
