"""`kitaru gc`: free the artifact store of blobs no record references (a dry run by default)."""

from __future__ import annotations

import typer

from .output import Format, OutputOption, print_json


def size_text(n: int) -> str:
    """Bytes for people: 512 B, 12.3 KB, 4.5 MB, 1.2 GB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def gc(
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove the blobs (default: only report)."),
    grace: str = typer.Option(
        "1h", "--grace", help="Keep blobs modified this recently (e.g. 30m, 1h, 2d): a run in "
        "progress may not have recorded them yet.",
    ),
    output: Format = OutputOption,
) -> None:
    """Remove blobs that no record references; a dry run unless --yes.

    Executions deleted with `kitaru executions delete` leave their blobs behind for
    this. Blobs modified within --grace, or since a still-running execution started,
    are kept, and so are leftovers of a crash until they are that old.
    """
    from kitaru.client import KitaruClient
    from kitaru_core.runtime.housekeeping import parse_duration

    report = KitaruClient().gc(grace=parse_duration(grace), dry_run=not yes)
    if output == Format.json:
        print_json(report.to_dict())
        return
    freed = size_text(report.removable_bytes)
    count = len(report.removable)
    kept = f"kept {report.referenced} referenced blobs"
    if report.kept_recent:
        kept += f" and {report.kept_recent} unreferenced ones newer than the {grace} grace period"
        if report.live_since is not None:
            kept += " or than a running execution"
    if not yes:
        if count:
            typer.echo(f"would free {freed}: {count} blobs no record references ({kept}).")
            typer.echo("Run `kitaru gc --yes` to remove them.")
        else:
            typer.echo(f"nothing to free ({kept}).")
        return
    typer.echo(f"freed {size_text(sum(b.size for b in report.removable))}: removed "
               f"{report.removed} blobs no record referenced ({kept}).")
