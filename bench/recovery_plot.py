"""The PNG of `outbid bench recovery`: seconds to correct answers, by method and history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plotting import use_agg


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    use_agg()
    import matplotlib.pyplot as plt  # noqa: PLC0415 - the bench extra, after use_agg()

    fig, ax = plt.subplots(figsize=(7, 4))
    series = [
        ("replay_s", "(a) event replay"),
        ("changelog_recovery_s", "(b) changelog recovery"),
        ("snapshot_recovery_s", "(c) snapshot (directory) + tail"),
    ]
    if all(r.get("snapshot_s3_recovery_s") for r in rows):
        series.append(("snapshot_s3_recovery_s", "(d) snapshot (object store) + tail"))
    width = 0.8 / len(series)
    xs = range(len(rows))
    for i, (key, label) in enumerate(series):
        values = [r[key] for r in rows]
        offset = (i - (len(series) - 1) / 2) * width
        bars = ax.bar([x + offset for x in xs], values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(
        list(xs), [f"{r['history_events']:,} events\n{r['auctions']:,} auctions" for r in rows]
    )
    ax.set_ylabel("seconds to correct answers (median)")
    ax.set_title("Fresh worker recovery: time grows with history unless snapshots are used")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
