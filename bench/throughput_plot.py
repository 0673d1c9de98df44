"""The PNG of `outbid bench throughput`: throughput bars and latency against offered load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plotting import use_agg

QUANTILES = (("p50_ms", "#2a9d8f"), ("p99_ms", "#e76f51"), ("p999_ms", "#6d597a"))


def plot(report: dict[str, Any], path: Path) -> None:
    use_agg()
    import matplotlib.pyplot as plt  # noqa: PLC0415 - the bench extra, after use_agg()

    fig, (bars, curve) = plt.subplots(1, 2, figsize=(14, 5.5))
    labels, values, colours = [], [], []

    def bar(label: str, value: Any, colour: str) -> None:
        if value:
            labels.append(label)
            values.append(float(value))
            colours.append(colour)

    bar("ceiling\n(txn)", report.get("ceiling_cmds_per_s"), "#888888")
    bar("ceiling\n(plain)", report.get("ceiling_non_transactional_cmds_per_s"), "#888888")
    bar("1 worker", report.get("pipeline_cmds_per_s"), "#4a7ab5")
    bar("2 workers", report.get("pipeline_2_workers_cmds_per_s"), "#4a7ab5")
    for row in report.get("auction_scaling", []):
        if row["scale"] != 1:
            bar(f"1 worker\n{row['auctions']:,} auct.", row["cmds_per_s"], "#7fa7d6")
    drawn = bars.bar(labels, values, color=colours)
    bars.bar_label(drawn, labels=[f"{v:,.0f}" for v in values], fontsize=7)
    bars.set_yscale("log")
    bars.set_ylabel("commands/s fully processed (log scale)")
    bars.set_title(f"Throughput ({report.get('guarantee')}); median of repeats")
    bars.tick_params(axis="x", labelsize=7)

    levels = report.get("latency", [])
    for field, style, name in (
        ("projection_committed", "-", "view committed"),
        ("redis_visible", ":", "Redis (worker histogram)"),
    ):
        for q, colour in QUANTILES:
            points = sorted(
                (lv["offered_per_s"], lv[field][q])
                for lv in levels
                if lv["share"] is not None and lv[field].get(q) is not None
            )
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
    for lv in levels:
        if lv["share"] is None:  # the fixed-rate level: marked apart from the curve
            for q, colour in QUANTILES:
                if lv["projection_committed"].get(q) is not None:
                    curve.scatter(
                        lv["offered_per_s"], lv["projection_committed"][q], color=colour, marker="*"
                    )
            curve.axvline(lv["offered_per_s"], color="grey", linewidth=0.6, linestyle="--")
    curve.axhline(100, color="grey", linewidth=0.8)
    curve.set_xscale("log")
    curve.set_yscale("log")
    curve.set_xlabel("offered load (commands/s, log scale; * = the steady-rate level)")
    curve.set_ylabel("latency from issued_at (ms, log scale)")
    curve.set_title("End-to-end latency at 25/50/75/100% of max and at a steady rate, 1 worker")
    curve.legend(fontsize=6)
    machine = report.get("machine", {})
    commit = (report.get("source", {}).get("commit") or "unknown")[:12]
    fig.suptitle(
        f"outbid bench throughput, {report.get('date', '')}, {commit}: "
        f"{machine.get('cpu_count')} CPUs ({machine.get('cpu_model', '')}), load avg "
        f"{machine.get('load_avg_start')} -> {machine.get('load_avg_end')}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
