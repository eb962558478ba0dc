"""`kitaru login URL` and `kitaru logout`: keep an API key for a kitaru server and a stack whose
registry is that server.

They live in kitaru-server (loaded through the `kitaru.cli` entry points, like `kitaru
server`), not in kitaru's own CLI: the stack they make needs the `server` registry flavor,
which this distribution provides, so without it `kitaru login` says what to install.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from kitaru.cli.output import Format, OutputOption, print_json
from kitaru_core.errors import ConfigError, InvalidValueError

from .flavors.config import ServerRegistryConfig, normalize_url
from .flavors.credentials import credentials_path, forget_key, logged_in_servers, store_key

login_app = typer.Typer(name="login", help="Log in to a kitaru server with an API key.")
logout_app = typer.Typer(name="logout", help="Forget the API key of a kitaru server.")

#: URL schemes of `--artifact-store` and the store flavor each means.
_STORE_SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
                  "abfss": "azure"}


def stack_name_for(url: str) -> str:
    """`server-<host>` (with `-<port>` when the URL names one): the stack `kitaru login` makes."""
    parts = urlsplit(url)
    name = f"server-{parts.hostname}"
    return f"{name}-{parts.port}" if parts.port else name


def _store_component(value: str) -> dict[str, Any]:
    """`--artifact-store`: a URL (s3://, gs://, az://, a path) or a {flavor, config} mapping."""
    text = value.strip()
    if text.startswith("{"):
        try:
            component = json.loads(text)
        except ValueError as exc:
            raise InvalidValueError(f"--artifact-store {text!r} is not JSON ({exc}); give a URL "
                                    'or {"flavor": ..., "config": {...}}') from None
        if not isinstance(component, dict) or not isinstance(component.get("flavor"), str):
            raise InvalidValueError('--artifact-store needs {"flavor": NAME, "config": {...}}')
        return component
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in _STORE_SCHEMES:
        return {"flavor": _STORE_SCHEMES[scheme], "config": {"path": text}}
    if scheme in ("", "file"):
        path = text[len("file://"):] if scheme else text
        return {"flavor": "local", "config": {"root": str(Path(path).expanduser())}}
    return {"flavor": "fsspec", "config": {"path": text}}


def _get(url: str, path: str, api_key: str) -> Any:
    import httpx

    try:
        resp = httpx.get(f"{url}/api/v1{path}", headers={"Authorization": f"Bearer {api_key}"},
                         timeout=30)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the kitaru server at {url} ({type(exc).__name__}: {exc}); "
                          "check the URL and that the server runs") from None
    return resp


def _verify(url: str, api_key: str) -> dict[str, Any]:
    """Who the key is (`/auth/whoami`), or a one-line error."""
    resp = _get(url, "/auth/whoami", api_key)
    if resp.status_code == 401:
        raise ConfigError(f"the kitaru server at {url} refused this API key ({_detail(resp)}); "
                          "check it, or ask an admin for one (`kitaru auth api-keys create`)")
    if resp.status_code != 200:
        raise ConfigError(f"{url} answered {resp.status_code} to /api/v1/auth/whoami; is it a "
                          "kitaru server?")
    return resp.json()


def _detail(resp: Any) -> str:
    try:
        return str(resp.json().get("detail", resp.status_code))
    except ValueError:
        return str(resp.status_code)


def _served_store(url: str, api_key: str) -> dict[str, Any] | None:
    """The artifact store of the stack the server serves, as `/registry/info` gives it."""
    resp = _get(url, "/registry/info", api_key)
    if resp.status_code != 200:
        return None
    store = resp.json().get("artifact_store")
    return store if isinstance(store, dict) and isinstance(store.get("flavor"), str) else None


def _register(spec: dict[str, Any], *, activate: bool) -> dict[str, Any]:
    import yaml

    from kitaru_core.stack import StackStore, clear_stack_cache

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        registered = StackStore().register(path, activate=activate, force=True)
    clear_stack_cache()
    return registered


def _read_key(url: str) -> str:
    interactive = sys.stdin.isatty() and os.environ.get("KITARU_INTERACTIVE", "1") not in ("0", "false")
    if not interactive:
        raise InvalidValueError(f"no API key given; pass --api-key (or set KITARU_API_KEY) to log "
                                f"in to {url} without a prompt")
    return typer.prompt(f"API key for {url}", hide_input=True).strip()


@login_app.command("login")
def login(
    url: str = typer.Argument(..., help="The server, e.g. https://kitaru.internal:8237"),
    api_key: str = typer.Option(
        None, "--api-key", envvar="KITARU_API_KEY", show_envvar=True,
        help="An API key (`kitaru auth api-keys create`); prompted for when not given."),
    artifact_store: str = typer.Option(
        None, "--artifact-store",
        help="The artifact store runs of this stack use: s3://..., gs://..., az://..., a folder, "
        "or a {flavor, config} JSON mapping. Default: the one the server's stack uses."),
    stack: str = typer.Option(None, "--stack", help="Name of the stack to register "
                              "(default: server-<host>[-<port>])."),
    activate: bool = typer.Option(True, "--activate/--no-activate",
                                  help="Make the stack the active one."),
    no_keyring: bool = typer.Option(False, "--no-keyring",
                                    help="Keep the key in a 0600 file even when a keyring is available."),
    output: Format = OutputOption,
) -> None:
    """Check an API key against a kitaru server, keep it (the OS keyring, else a 0600 file)
    and register a stack whose registry is that server."""
    from kitaru_core.home import home_dir

    try:
        url = ServerRegistryConfig(url=url).url
    except ValueError as exc:
        raise InvalidValueError(f"{url!r} is not a server URL; write it like "
                                "https://kitaru.example.com:8237") from exc
    key = (api_key or "").strip() or _read_key(url)
    who = _verify(url, key)
    store = _store_component(artifact_store) if artifact_store else _served_store(url, key)
    if store is None:
        raise ConfigError(f"the kitaru server at {url} does not say which artifact store its "
                          "stack uses; pass --artifact-store (s3://bucket/prefix, ...)")
    name = stack or stack_name_for(url)
    spec = {"name": name, "description": f"the kitaru server at {url}",
            "registry": {"flavor": "server", "config": {"url": url}}, "artifact_store": store}
    home = home_dir()
    registered = _register(spec, activate=False)  # validated before the key is kept
    where = store_key(home, url, key, use_keyring=not no_keyring)
    if activate:
        from kitaru_core.stack import StackStore

        StackStore(home).set_active(registered["name"])
    kept = "the OS keyring" if where == "keyring" else f"{where} (mode 0600)"
    if output == Format.json:
        print_json({"url": url, "account": who.get("account"), "scope": who.get("scope"),
                    "key_id": who.get("key_id"), "stored": "keyring" if where == "keyring" else "file",
                    "credentials": None if where == "keyring" else where, "stack": registered["name"],
                    "active": activate, "artifact_store": store})
        return
    typer.echo(f"Logged in to {url} as {who.get('account')} (scope {who.get('scope')}); the API key "
               f"is kept in {kept}.")
    typer.echo(f"Stack {registered['name']!r}: registry {url}, artifact store {store['flavor']}"
               + (" (active)" if activate else f"; activate it with `kitaru stack set {registered['name']}`"))
    if who.get("scope") == "read":
        typer.echo("This key has the read scope: it lists and reads executions; running flows needs "
                   "an operator key.", err=True)


def _server_of_stack(name: str) -> str | None:
    from kitaru_core.stack import StackStore

    try:
        registry = StackStore().get(name).get("registry") or {}
    except ConfigError:
        return None
    if registry.get("flavor") != "server":
        return None
    url = (registry.get("config") or {}).get("url")
    return normalize_url(url) if isinstance(url, str) else None


@logout_app.command("logout")
def logout(
    url: str = typer.Argument(None, help="The server (default: the active stack's, or the only "
                              "one logged in to)."),
    output: Format = OutputOption,
) -> None:
    """Forget the API key kept for a server; if its stack is active, `local` becomes active."""
    from kitaru_core.home import home_dir
    from kitaru_core.stack import DEFAULT_STACK, StackStore

    home = home_dir()
    stacks = StackStore(home)
    active = stacks.active_name()
    if url is None:
        url = _server_of_stack(active)
        servers = logged_in_servers(home)
        if url is None and len(servers) == 1:
            url = servers[0]
        if url is None:
            listed = ", ".join(servers) or "none"
            raise InvalidValueError(f"name the server to log out of; logged in to: {listed}")
    url = normalize_url(url)
    where = forget_key(home, url)
    if where is None:
        raise InvalidValueError(f"not logged in to {url}; logged in to: "
                                f"{', '.join(logged_in_servers(home)) or 'none'}")
    switched = _server_of_stack(active) == url
    if switched:
        stacks.set_active(DEFAULT_STACK)
    if output == Format.json:
        print_json({"url": url, "removed_from": where, "active_stack": stacks.active_name()})
        return
    place = "the OS keyring" if where == "keyring" else str(credentials_path(home))
    typer.echo(f"Logged out of {url}: its API key is removed from {place}.")
    if switched:
        typer.echo(f"Stack {active!r} stays registered; the active stack is now {DEFAULT_STACK!r}.")
