"""`kitaru executions delete`: remove executions by id, age or status (blobs: `kitaru gc`)."""

from __future__ import annotations

import sys

import typer

from .output import Format, OutputOption, print_json, short_id


def delete(
    exec_ids: list[str] = typer.Argument(None, help="Execution ids (or unique prefixes)."),
    older_than: str = typer.Option(
        None, "--older-than", help="Executions created longer ago than this (e.g. 30d, 12h)."
    ),
    status: str = typer.Option(
        None, "--status", help="Only executions in this state (completed, failed, cancelled, ...)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Also delete waiting executions and running ones whose owner is "
        "gone (they could still be resumed). One whose runner is alive is never deleted.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting by filter."),
    output: Format = OutputOption,
) -> None:
    """Delete executions with their calls, waits, logs, metadata and artifact references.

    Memory is kept. The blobs they used stay in the artifact store until
    `kitaru gc --yes` removes those no record references.
    """
    from kitaru.client import KitaruClient
    from kitaru_core.errors import InvalidValueError
    from kitaru_core.runtime import housekeeping

    client = KitaruClient()
    seconds = None if older_than is None else housekeeping.parse_duration(older_than)
    if exec_ids:
        result = client.executions.delete(*exec_ids, older_than=seconds, status=status,
                                          force=force, dry_run=dry_run)
    else:
        preview = client.executions.delete(older_than=seconds, status=status, force=force,
                                           dry_run=True)
        if not dry_run and preview.deleted and not yes:
            if not sys.stdin.isatty():
                raise InvalidValueError(
                    f"this would delete {len(preview.deleted)} executions; add --yes to confirm "
                    "(or --dry-run to list them)"
                )
            typer.confirm(f"Delete {len(preview.deleted)} executions?", abort=True)
        result = preview if dry_run else client.executions.delete(
            older_than=seconds, status=status, force=force)
    if output == Format.json:
        print_json({"dry_run": dry_run, "deleted": result.deleted, "refused": result.refused})
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {len(result.deleted)} executions"
               + (": " + " ".join(short_id(e) for e in result.deleted) if result.deleted else ""))
    for eid, why in result.refused.items():
        typer.echo(f"kept {short_id(eid)}: {why}")
    if result.deleted and not dry_run:
        typer.echo("Their blobs stay until `kitaru gc --yes` frees those no record references.")
