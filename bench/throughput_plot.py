"""The PNG of `outbid bench throughput`: throughput bars and latency against offered load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display: a file only

import matplotlib.pyplot as plt


def plot(report: dict[str, Any], path: Path) -> None:
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(13, 5))
    labels, values = [], []
    for label, key in (
        ("ceiling\n(transactional)", "ceiling_cmds_per_s"),
        ("ceiling\n(plain)", "ceiling_non_transactional_cmds_per_s"),
        ("pipeline\n1 worker", "pipeline_cmds_per_s"),
        ("pipeline\n2 workers", "pipeline_2_workers_cmds_per_s"),
    ):
        if report.get(key):
            labels.append(label)
            values.append(float(report[key]))
    for row in report.get("auction_scaling", []):
        if row["scale"] != 1 and row["cmds_per_s"]:
            labels.append(f"1 worker\n{row['auctions']:,} auctions")
            values.append(float(row["cmds_per_s"]))
    drawn = bars.bar(labels, values, color="#4a7ab5")
    bars.bar_label(drawn, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("commands/s (log scale)")
    bars.set_title(f"Throughput ({report.get('guarantee')}); median of repeats")
    bars.tick_params(axis="x", labelsize=7)

    levels = report.get("latency", [])
    offered = [lv["offered_per_s"] for lv in levels]
    for field, style, name in (
        ("projection_committed", "-", "view committed (changelog)"),
        ("event_committed", "--", "event committed"),
        ("redis_visible", ":", "Redis read model (worker histogram)"),
    ):
        for q, colour in (("p50_ms", "#2a9d8f"), ("p99_ms", "#e76f51"), ("p999_ms", "#6d597a")):
            ys = [lv[field].get(q) for lv in levels]
            if any(y is not None for y in ys):
                points = [(x, y) for x, y in zip(offered, ys, strict=True) if y is not None]
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
    curve.set_yscale("log")
    curve.set_xlabel("offered load (commands/s)")
    curve.set_ylabel("latency from issued_at (ms, log scale)")
    curve.set_title("End-to-end latency, 1 worker (grey: 100 ms target)")
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
