"""The `swapface` command: one sub-command per pipeline stage."""

from __future__ import annotations

import typer

from swapface.cli import demo, evaluate, extract, serve, swap, train, train_occlusion, verify

app = typer.Typer(
    name="swapface",
    help="Swap one person's face for another's in video: extract faces, train a model, swap, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Swap one person's face for another's in video: extract faces, train a model, swap, evaluate."""


for module in (demo, extract, train, swap, evaluate, verify, serve, train_occlusion):
    module.register(app)


if __name__ == "__main__":
    app()
