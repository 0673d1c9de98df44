"""The PNG of `outbid bench throughput`: throughput bars and latency against offered load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display: a file only

import matplotlib.pyplot as plt


def plot(report: dict[str, Any], path: Path) -> None:
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(14, 5.5))
    hotpath = report.get("hotpath") or {}
    labels, values, colours = [], [], []

    def bar(label: str, value: Any, colour: str) -> None:
        if value:
            labels.append(label)
            values.append(float(value))
            colours.append(colour)

    bar("ceiling\n(txn)", report.get("ceiling_cmds_per_s"), "#888888")
    bar("ceiling\n(plain)", report.get("ceiling_non_transactional_cmds_per_s"), "#888888")
    for section, name, colour in ((report, "faust", "#4a7ab5"), (hotpath, "hotpath", "#e07a1f")):
        bar(f"{name}\n1 proc", section.get("pipeline_cmds_per_s"), colour)
        bar(f"{name}\n2 procs", section.get("pipeline_2_workers_cmds_per_s"), colour)
        for row in section.get("auction_scaling", []):
            if row["scale"] != 1:
                bar(f"{name} 1 proc\n{row['auctions']:,} auct.", row["cmds_per_s"], colour)
    drawn = bars.bar(labels, values, color=colours)
    bars.bar_label(drawn, labels=[f"{v:,.0f}" for v in values], fontsize=7)
    bars.set_yscale("log")
    bars.set_ylabel("commands/s fully processed (log scale)")
    bars.set_title(f"Throughput ({report.get('guarantee')}); median of repeats")
    bars.tick_params(axis="x", labelsize=6)

    for levels, field, style, name in (
        (report.get("latency", []), "projection_committed", "-", "faust: view committed"),
        (report.get("latency", []), "redis_visible", ":", "faust: Redis (worker histogram)"),
        (hotpath.get("latency", []), "event_committed", "--", "hotpath: event + view committed"),
    ):
        offered = [lv["offered_per_s"] for lv in levels]
        for q, colour in (("p50_ms", "#2a9d8f"), ("p99_ms", "#e76f51"), ("p999_ms", "#6d597a")):
            points = [
                (x, lv[field].get(q))
                for x, lv in zip(offered, levels, strict=True)
                if lv[field].get(q) is not None
            ]
            if points:
                curve.plot(
                    [x for x, _ in points],
                    [y for _, y in points],
                    style,
                    color=colour,
                    marker="o",
                    markersize=3,
                    label=f"{q[:-3]} {name}",
                )
    curve.axhline(100, color="grey", linewidth=0.8)
    curve.set_xscale("log")
    curve.set_yscale("log")
    curve.set_xlabel("offered load (commands/s, log scale)")
    curve.set_ylabel("latency from issued_at (ms, log scale)")
    curve.set_title("End-to-end latency at 25/50/75/100% of each engine's max, 1 process")
    curve.legend(fontsize=6)
    machine = report.get("machine", {})
    fig.suptitle(
        f"outbid bench throughput, {report.get('date', '')}: {machine.get('cpu_count')} CPUs "
        f"({machine.get('cpu_model', '')}), load avg {machine.get('load_avg_start')} -> "
        f"{machine.get('load_avg_end')}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
