"""What a chaos run found, as JSON and as a summary a person reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.audit.checks import Findings
from app.chaos.probes import FIND_HANGING_TIMEOUT_MIN
from app.chaos.schedule import ChaosSpec, Kill


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """A worker process that ended without the run killing it."""

    worker: int
    at_s: float  # seconds after the load started
    phase: str  # load, catch-up or audit
    last_error: str  # the last line of its log that names an error


@dataclass
class ChaosResult:
    spec: ChaosSpec = field(default_factory=ChaosSpec)
    sent: dict[str, int] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)  # the scheduled kills that were made
    kills_skipped: list[Kill] = field(default_factory=list)  # their worker was down already
    exits: list[WorkerExit] = field(default_factory=list)
    broker: Kill | None = None  # the broker kill, if it happened
    rebalances: int = 0
    load_seconds: float = 0.0
    backlog: int | None = None  # records left to process when the load stopped
    catch_up_seconds: float = 0.0
    # after catch-up, until no partition had an open transaction (a killed worker's, aborted by
    # the broker at its transaction timeout when no restarted worker fenced it first)
    open_transactions_seconds: float = 0.0
    lag: int | None = None  # on the commands topic, after catch-up
    hanging: list[dict[str, str]] = field(default_factory=list)  # find-hanging's rows
    hanging_errors: list[str] = field(default_factory=list)  # brokers find-hanging could not ask
    findings: Findings | None = None

    @property
    def worker_kills(self) -> int:
        return len(self.kills)

    @property
    def worker_exits(self) -> int:
        return len(self.exits)

    @property
    def broker_kills(self) -> int:
        return int(self.broker is not None)

    @property
    def ok(self) -> bool:
        return (
            self.findings is not None
            and self.findings.ok
            and not self.hanging
            and not self.hanging_errors
            and self.lag == 0
        )

    def as_json(self) -> dict[str, object]:
        f = self.findings
        total = sum(self.sent.values())
        return {
            "ok": self.ok,
            "seed": self.spec.seed,
            "spec": asdict(self.spec),
            "sent": self.sent,
            "load_seconds": round(self.load_seconds, 1),
            "rate": round(total / self.load_seconds, 1) if self.load_seconds else None,
            "worker_kills": self.worker_kills,
            "worker_kill_schedule": [[k.at_s, k.target] for k in self.kills],
            "worker_kills_skipped": [[k.at_s, k.target] for k in self.kills_skipped],
            "broker_kills": self.broker_kills,
            "broker_kill": {
                "at_s": self.broker.at_s,
                "node": self.broker.target,
                "down_s": self.spec.broker_down_s,
            }
            if self.broker
            else None,
            "worker_exits": self.worker_exits,
            "worker_exit_details": [asdict(e) for e in self.exits],
            "rebalances": self.rebalances,
            "backlog_at_load_end": self.backlog,
            "catch_up_seconds": round(self.catch_up_seconds, 1),
            "open_transactions_seconds": self.open_transactions_seconds,
            "lag": self.lag,
            "find_hanging": {
                "max_transaction_timeout_min": FIND_HANGING_TIMEOUT_MIN,
                "brokers": list(range(1, self.spec.brokers + 1)),
                "hanging": self.hanging,
                "errors": self.hanging_errors,
            },
            "duplicates_absorbed": f.counts["duplicates_absorbed"] if f else None,
            "dead_letters": f.counts["dead_letters"] if f else None,
            "verify_ok": f.ok if f else None,
            "problems": {
                k: {"count": f.problem_counts[k], "examples": v[:3]} for k, v in f.problems.items()
            }
            if f
            else None,
        }

    def summary(self) -> list[str]:
        f = self.findings
        hanging = (
            "none"
            if not self.hanging and not self.hanging_errors
            else "; ".join(
                [
                    *(
                        f"broker {h['broker']}: {h['Topic']}[{h['Partition']}] producer "
                        f"{h['ProducerId']} epoch {h['ProducerEpoch']} from offset {h['StartOffset']}"
                        for h in self.hanging
                    ),
                    *self.hanging_errors,
                ]
            )
        )
        exits = ", ".join(f"worker {e.worker} at {e.at_s:.0f}s ({e.phase})" for e in self.exits)
        return [
            f"chaos seed {self.spec.seed}: {'PASS' if self.ok else 'FAIL'}",
            f"  verify: {'ok' if f and f.ok else 'FAILED'}"
            + (
                f" ({f.counts['duplicates_absorbed']} duplicates absorbed, "
                f"{f.counts['dead_letters']} dead letters)"
                if f
                else ""
            ),
            f"  find-hanging on brokers 1-{self.spec.brokers}: {hanging}",
            f"  lag on the commands topic after catch-up: {self.lag}",
            f"  kill -9: {self.worker_kills} worker(s) ({len(self.kills_skipped)} skipped), "
            f"{self.broker_kills} broker; {self.rebalances} assignments; "
            f"catch-up {self.catch_up_seconds:.0f}s (backlog {self.backlog} at load end)",
            f"  workers that stopped by themselves: {self.worker_exits}"
            + (f" ({exits})" if exits else ""),
        ]
