"""`kitaru secrets ...`: set, list, show and delete secrets; the secrets key's rotation.

No command prints a secret's value: `show` and `list` give names and key names only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from .output import Format, OutputOption, print_json, table, when

app = typer.Typer(help="Manage secrets (sealed in the registry; values are never shown).",
                  no_args_is_help=True)


def _api() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient().secrets


@app.command("set", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def set_secret(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The secret's name, e.g. openai-creds."),
    from_env: list[str] = typer.Option(
        None, "--from-env", metavar="KEY[=VARIABLE]",
        help="Take KEY's value from this process's environment variable (default: KEY)."),
    replace: bool = typer.Option(False, "--replace", help="Keep only the keys given (drop the others)."),
    output: Format = OutputOption,
) -> None:
    """Create or update a secret: `kitaru secrets set NAME --KEY=value ...`.

    `--KEY=-` reads the value from standard input (it then stays out of the shell's
    history and the process list). Keys already in the secret and not given are kept.
    """
    from kitaru_core.errors import ConfigError

    values = _assignments(list(ctx.args), name)
    for item in from_env or []:
        key, _, variable = item.partition("=")
        variable = variable or key
        if variable not in os.environ:
            raise ConfigError(f"--from-env {item}: the environment variable {variable} is not set")
        values[key] = os.environ[variable]
    if not values:
        raise ConfigError(f"give the secret's keys: kitaru secrets set {name} --API_KEY=value")
    secret = _api().set(name, values, replace=replace)
    if output == Format.json:
        print_json(secret.to_dict())
        return
    typer.echo(f"set secret {secret.name!r} (keys: {', '.join(secret.keys)})")


def _assignments(args: list[str], name: str) -> dict[str, str]:
    """`--KEY=value` arguments as a dict; `--KEY=-` reads the value from standard input."""
    from kitaru_core.errors import ConfigError

    values: dict[str, str] = {}
    from_stdin = None
    for arg in args:
        if arg == "--private":
            raise ConfigError("--private (Kitaru 0.21) is not offered: every secret of a registry is "
                              "visible by name and keys to whoever can read that registry, never "
                              "by value; see docs/secrets.md")
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or not key:
            shown = arg.split("=", 1)[0] + ("=..." if "=" in arg else "")
            raise ConfigError(f"`{shown}` is not a secret assignment; use --KEY=value "
                              f"(e.g. kitaru secrets set {name} --API_KEY=...)")
        if value == "-":
            if from_stdin is not None:
                raise ConfigError(f"only one key can read its value from standard input "
                                  f"(--{from_stdin}=- and --{key}=-)")
            from_stdin = key
            value = sys.stdin.read().rstrip("\r\n")
        values[key] = value
    return values


@app.command("list")
def list_secrets(output: Format = OutputOption) -> None:
    """List secrets: the registry's, and those in the environment (KITARU_SECRET_<NAME>)."""
    found = _api().list()
    if output == Format.json:
        print_json([s.to_dict() for s in found])
        return
    if not found:
        typer.echo("no secrets; set one with `kitaru secrets set NAME --KEY=value`")
        return
    table(["name", "keys", "source", "updated"],
          [[s.name, ", ".join(s.keys), s.source, when(s.updated_at)] for s in found],
          no_wrap=("updated",))


@app.command("show")
def show(name: str = typer.Argument(..., help="The secret's name."), output: Format = OutputOption) -> None:
    """Show a secret's keys and where it is kept (never its values)."""
    secret = _api().get(name)
    if output == Format.json:
        print_json(secret.to_dict())
        return
    typer.echo(f"secret:  {secret.name}\nsource:  {secret.source}\nkeys:    {', '.join(secret.keys)}")
    if secret.source == "registry":
        typer.echo(f"version: {secret.version}\nupdated: {when(secret.updated_at)}\n"
                   f"sealed with key {secret.key_id}")


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The secret's name."), output: Format = OutputOption) -> None:
    """Delete a secret from the registry."""
    secret = _api().delete(name)
    if output == Format.json:
        print_json({"deleted": secret.to_dict()})
        return
    typer.echo(f"deleted secret {secret.name!r}")


@app.command("generate-key")
def generate_key(output: Format = OutputOption) -> None:
    """Print a new random secrets key (for KITARU_SECRETS_KEY, shared by a team)."""
    from kitaru_core.secrets import generate_key as new_key
    from kitaru_core.secrets import key_id

    key = new_key()
    if output == Format.json:
        import base64

        print_json({"key": key, "key_id": key_id(base64.urlsafe_b64decode(key))})
        return
    typer.echo(key)


@app.command("rotate-key")
def rotate_key(
    drop_old: bool = typer.Option(False, "--drop-old", help="Forget the old keys once every secret "
                                  "is sealed with the new one."),
    output: Format = OutputOption,
) -> None:
    """Seal every secret with a new key in the key file (<home>/secrets.key); the old keys stay
    able to open until --drop-old. With KITARU_SECRETS_KEY set: put the new key first in it,
    then run `kitaru secrets reencrypt`."""
    from kitaru_core.errors import ConfigError
    from kitaru_core.secrets import KEY_ENV, generate_key, keyring
    from kitaru_core.secrets.crypto import key_path, write_key_file

    if os.environ.get(KEY_ENV, "").strip():
        raise ConfigError(
            f"{KEY_ENV} is set, so the key file is not used: put a new key (`kitaru secrets "
            f"generate-key`) first in {KEY_ENV}, the old one after a comma, and run "
            "`kitaru secrets reencrypt`"
        )
    path = key_path()
    old = [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if old:
        keyring()  # the file must be readable before it is rewritten
    write_key_file([generate_key(), *old], path)
    done = _api().reencrypt()
    if drop_old:
        write_key_file([path.read_text().splitlines()[0]], path)
    new_id = keyring().ids[0]
    if output == Format.json:
        print_json({"key_id": new_id, "reencrypted": [s.name for s in done], "old_keys_dropped": drop_old})
        return
    typer.echo(f"new key {new_id} in {path}; {len(done)} secret(s) sealed with it"
               + ("; old keys dropped" if drop_old else "; old keys kept (drop them with --drop-old)"))


@app.command("reencrypt")
def reencrypt(output: Format = OutputOption) -> None:
    """Seal every secret again with the first key (after putting a new key first)."""
    done = _api().reencrypt()
    if output == Format.json:
        print_json({"reencrypted": [s.name for s in done]})
        return
    typer.echo(f"{len(done)} secret(s) sealed with key {done[0].key_id if done else '-'}")
