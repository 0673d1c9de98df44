"""matplotlib for the benchmarks' PNGs: the optional `bench` extra, imported only to plot."""

from __future__ import annotations

import click

MISSING = (
    "plotting needs matplotlib, the optional bench extra: run scripts/setup.sh, or "
    "pip install -e '.[bench]' in the checkout (the JSON, if asked for, is already written)"
)


def use_agg() -> None:
    """Select matplotlib's Agg backend (no display: files only), or say what to install."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional and slow to import
    except ModuleNotFoundError as exc:
        raise click.ClickException(MISSING) from exc
    mpl.use("Agg")
