"""`swapface serve`: the web app and job API on this machine (see swapface.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swapface.cli.common import console, user_errors
from swapface.errors import SwapfaceError


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every network; think before).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    data: Annotated[Path, typer.Option(help="Folder for uploads, outputs, models and the job database.")]
    = Path("swapface-data"),
    max_upload: Annotated[str, typer.Option("--max-upload", help="Largest upload (e.g. 500M, 4G).")] = "4G",
    cpu_jobs: Annotated[int, typer.Option(help="Jobs running at once on the CPU (GPU jobs: one per GPU).",
                                          min=1)] = 1,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the job database, e.g. "
                                                "postgresql+psycopg://user@host/swapface (default: SQLite "
                                                "in --data).")] = None,
    ray: Annotated[str | None, typer.Option(
        help="Run the jobs as tasks on this Ray cluster (an address, or 'auto'; needs swapface[cluster]). "
             "--data must be on a path every node sees, and --db reachable from every node.")] = None,
) -> None:
    """Serve the web UI and the job API (token: $SWAPFACE_TOKEN, or made and printed on first start)."""
    with user_errors():
        import uvicorn

        from swapface.serve.app import create_app
        from swapface.serve.auth import load_token
        from swapface.serve.config import ServeConfig
        from swapface.serve.uploads import parse_size

        try:
            limit = parse_size(max_upload)
        except ValueError as exc:
            raise SwapfaceError(f"--max-upload: {exc}") from None
        data.mkdir(parents=True, exist_ok=True)
        token, new = load_token(data)
        app = create_app(ServeConfig(data=data, token=token, max_upload=limit, db_url=db, cpu_jobs=cpu_jobs,
                                     ray=ray))
        shown = "[::1]" if host == "::1" else ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
        if new:
            console.print(f"access token (kept in {data / 'token'}): {token}", highlight=False, soft_wrap=True)
        console.print(f"swapface serve: open http://{shown}:{port}/login#token={token}", highlight=False,
                      soft_wrap=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
