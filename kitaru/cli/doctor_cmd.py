"""`kitaru doctor`: check the active stack's record and artifact store, and say what to do."""

from __future__ import annotations

from typing import Any

import typer

from .output import Format, OutputOption, print_json


def registry_check(stack_name: str | None = None, *, full: bool = False) -> dict[str, Any]:
    """{"ok": bool|None, "problems": [...], "full": bool}: the registry's integrity check.

    `ok` is None when the registry could not be checked (it cannot be opened for a reason
    other than damage, or its flavor has no check); a damaged file is `ok: False`.
    """
    from kitaru.client import KitaruClient
    from kitaru_core.errors import KitaruError, RegistryDamagedError

    try:
        report = KitaruClient(stack_name).check(full=full)
    except RegistryDamagedError as exc:
        return {"ok": False, "full": full, "problems": [str(exc)]}
    except KitaruError as exc:
        return {"ok": None, "full": full, "problems": [str(exc)]}
    if not report.registry_checked:
        return {"ok": None, "full": full, "problems": ["this registry flavor has no check"]}
    return {"ok": report.ok, "full": full, "problems": report.problems,
            "blobs_checked": report.blobs_checked}


def doctor(
    check: bool = typer.Option(
        False, "--check", help="The full check: SQLite's integrity_check and every referenced "
        "blob read back against its size and sha256 (slower).",
    ),
    output: Format = OutputOption,
) -> None:
    """Check the registry (quick check; --check for the full one) and the artifact store."""
    from kitaru.client import KitaruClient
    from kitaru_core.errors import KitaruError

    from .gc_cmd import size_text

    result = registry_check(full=check)
    store: dict[str, Any] = {}
    if result["ok"] is not False:
        try:
            gc = KitaruClient().gc(dry_run=True)
            store = {"removable_blobs": len(gc.removable), "removable_bytes": gc.removable_bytes,
                     "referenced_blobs": gc.referenced}
        except KitaruError as exc:
            store = {"error": str(exc)}
    if output == Format.json:
        print_json({"registry": result, "artifact_store": store})
    else:
        what = "full check" if check else "quick check; `kitaru doctor --check` for the full one"
        if result["ok"]:
            extra = f", {result['blobs_checked']} blobs verified" if check else ""
            typer.echo(f"registry:       ok ({what}{extra})")
        elif result["ok"] is None:
            typer.echo(f"registry:       not checked: {result['problems'][0]}")
        else:
            typer.echo(f"registry:       DAMAGED ({len(result['problems'])} problems)")
            for problem in result["problems"][:20]:
                typer.echo(f"  {problem}")
            typer.echo("  restore the registry from a backup; blobs it names can be restored "
                       "from the artifact store's backup")
        if "error" in store:
            typer.echo(f"artifact store: not checked: {store['error']}")
        elif store:
            line = f"artifact store: {store['referenced_blobs']} referenced blobs"
            if store["removable_blobs"]:
                line += (f"; {store['removable_blobs']} unreferenced "
                         f"({size_text(store['removable_bytes'])}): `kitaru gc --yes` frees them")
            typer.echo(line)
    if result["ok"] is False:
        raise typer.Exit(1)
