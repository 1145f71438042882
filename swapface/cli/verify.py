"""`swapface verify`: is this file a swapface output? Content Credentials, metadata tag, watermark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from swapface.cli.common import console
from swapface.errors import SwapfaceError
from swapface.provenance.verify import SAMPLE_FRAMES, Verdict, verify_file
from swapface.provenance.watermark import DEFAULT_KEY


def verify_command(
    file: Annotated[Path, typer.Argument(help="Video or image to check.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON (for machines).")] = False,
    key: Annotated[str, typer.Option(help="Watermark key to look for (an organisation's own, if it set one).")]
    = DEFAULT_KEY,
    frames: Annotated[int, typer.Option(help="Frames spread over a video that the watermark detector reads.",
                                        min=1)] = SAMPLE_FRAMES,
) -> None:
    """Say whether FILE is a swapface output, with each piece of evidence: the signed C2PA manifest, the
    synthetic metadata tag and the invisible watermark. Exit 0: a swapface output; 1: no evidence; 2: bad
    input."""
    try:
        verdict = verify_file(file, key=key, frames=frames)
    except SwapfaceError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if json_out:
        print(verdict.to_json())
    else:
        _show(verdict)
    raise typer.Exit(0 if verdict.swapface else 1)


def _show(verdict: Verdict) -> None:
    m, w = verdict.manifest, verdict.watermark
    table = Table(title=f"{verdict.path}: {verdict.summary}", show_header=False, title_justify="left")
    if not m.present:
        table.add_row("Content Credentials", "none")
    else:
        state = "valid" if m.valid else "INVALID (the file changed after signing, or the manifest is damaged)"
        table.add_row("Content Credentials", f"{state}; signer {m.signer or '?'} ({m.issuer or '?'}), "
                                             f"{'trusted' if m.trusted else 'not on a trust list'}")
        table.add_row("  actions", ", ".join(m.actions) or "-")
        table.add_row("  source type", m.source_type or "-")
        if m.failures:
            table.add_row("  failures", ", ".join(m.failures))
    table.add_row("metadata tag", verdict.tag or "none")
    if verdict.credentials_tag:
        table.add_row("  credentials tag", verdict.credentials_tag)
    table.add_row("watermark", f"{'found' if w.found else 'not found'} (z = {w.z:.1f}, chance if unmarked "
                               f"<= {w.p_value:.1g}; {w.faces} faces in {w.frames} frames)")
    console.print(table, highlight=False, soft_wrap=True)
    print(verdict.summary)


def register(app: typer.Typer) -> None:
    """Add the sub-command to the app."""
    app.command("verify")(verify_command)
