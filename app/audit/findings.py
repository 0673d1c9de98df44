"""What an audit found: each invariant as a check that ran (ok, failed) or did not (skipped).

A check that did not run (Redis switched off) or examined nothing is skipped, never ok, and an
audit with no commands and no events is not ok: `outbid verify` cannot pass vacuously on a wrong
prefix or an empty cluster.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

MAX_EXAMPLES = 10


@dataclass(frozen=True, slots=True)
class Check:
    """One invariant: the problem kinds that break it, and why it is skipped when it sees nothing."""

    name: str  # its key in `Findings.examined`, `Findings.skipped` and the JSON report
    title: str
    kinds: tuple[str, ...]
    nothing_to_check: str


CHECKS = (
    Check(
        "command_outcomes",
        "every command has exactly one outcome (decision, duplicate, re-route or dead letter)",
        (
            "command_without_decision",
            "invalid_command_not_dead_lettered",
            "unkeyed_command_not_rerouted",
            "command_rerouted_twice",
        ),
        "no commands in bid-commands",
    ),
    Check(
        "no_duplicate_events",
        "no event twice in auction-events",
        ("duplicate_event", "duplicate_event_id"),
        "no decodable events in auction-events",
    ),
    Check(
        "no_duplicate_dead_letters",
        "no record dead-lettered twice",
        ("duplicate_dead_letter",),
        "no dead letters naming their source in bid-commands-dlq",
    ),
    Check(
        "seq_contiguous",
        "per-auction seq is 1..n without gap",
        ("seq_gap", "seq_out_of_order"),
        "no decodable events in auction-events",
    ),
    Check(
        "events_well_formed",
        "events decode and are keyed by auction",
        ("undecodable_event", "event_key_mismatch"),
        "no events in auction-events",
    ),
    Check(
        "highest_bids",
        "highest_bids table == fold(events)",
        ("highest_bids_differs_from_fold",),
        "no auctions in the event log and no keys in the highest_bids changelog",
    ),
    Check(
        "auctions",
        "auctions table == fold(events)",
        ("auctions_differs_from_fold",),
        "no auctions in the event log and no keys in the auctions changelog",
    ),
    Check(
        "redis",
        "Redis read model == fold(events)",
        ("redis_differs_from_fold", "redis_key_without_events"),
        "no auctions in the event log and no auction keys in Redis",
    ),
    Check(
        "aggregate_snapshots",
        "aggregate snapshots == fold(events) at their seq",
        (
            "aggregate_snapshot_unreadable",
            "aggregate_snapshot_foreign",
            "aggregate_snapshot_differs",
            "aggregate_snapshot_without_events",
        ),
        "no aggregate snapshots in auction-snapshots",
    ),
)


class Status(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"  # it did not run, or had nothing to examine: never reported as ok
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    status: Status
    checked: int  # the items it examined (commands, events, keys, dead letters, snapshots)
    problems: int
    reason: str | None  # why it was skipped

    def as_json(self) -> dict[str, object]:
        return {
            "title": self.check.title,
            "status": self.status.value,
            "checked": self.checked,
            "problems": self.problems,
            "reason": self.reason,
        }


@dataclass
class Findings:
    """Counts of what was seen and lists of what is wrong (a few examples per kind)."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problem_counts: Counter[str] = field(default_factory=Counter)
    digests: dict[str, dict[int, tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    examined: Counter[str] = field(default_factory=Counter)  # check name -> items it looked at
    skipped: dict[str, str] = field(default_factory=dict)  # check name -> why it did not run

    def problem(self, kind: str, detail: str) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems[kind]) < MAX_EXAMPLES:
            self.problems[kind].append(detail)

    def skip(self, check: str, reason: str) -> None:
        self.skipped[check] = reason

    @property
    def empty(self) -> bool:
        """Nothing to audit: no commands and no events (a wrong prefix or cluster, most likely)."""
        return not self.counts["commands"] and not self.counts["events"]

    @property
    def ok(self) -> bool:
        """Every invariant holds over something: an empty audit is not ok."""
        return not self.problem_counts and not self.empty

    def result(self, check: Check) -> CheckResult:
        checked = self.examined[check.name]
        problems = sum(self.problem_counts[kind] for kind in check.kinds)
        if problems:
            return CheckResult(check, Status.FAILED, checked, problems, None)
        reason = self.skipped.get(check.name) or (None if checked else check.nothing_to_check)
        if reason is not None:
            return CheckResult(check, Status.SKIPPED, checked, 0, reason)
        return CheckResult(check, Status.OK, checked, 0, None)

    def results(self) -> list[CheckResult]:
        return [self.result(check) for check in CHECKS]

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "empty": self.empty,
            "checks": {r.check.name: r.as_json() for r in self.results()},
            "counts": dict(sorted(self.counts.items())),
            "problems": {
                k: {"count": self.problem_counts[k], "examples": v}
                for k, v in sorted(self.problems.items())
            },
            "digests": {
                t: {str(p): {"live": a, "fold": b} for p, (a, b) in sorted(d.items())}
                for t, d in sorted(self.digests.items())
            },
        }
