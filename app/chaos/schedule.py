"""The chaos run's schedule, from its seed alone: which worker is killed when, which broker
when, and the load generator's commands. `--seed` repeats a run's schedule exactly; what the
machine does with it (how far each transaction got when its worker died) is not repeatable."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from app import loadgen


@dataclass(frozen=True, slots=True)
class ChaosSpec:
    commands: int = 100_000
    rate: float = 2_000.0
    auctions: int = 1_000
    workers: int = 3
    brokers: int = 3
    kill_every_s: float = 6.0  # on average; each gap is drawn between half and 1.5 times this
    restart_after_s: float = 2.0
    broker_kill: bool = True
    broker_down_s: float = 10.0  # longer than broker.session.timeout.ms (9 s): leaders move
    catch_up_timeout_s: float = 600.0
    seed: int = 1

    @property
    def expected_load_s(self) -> float:
        return self.commands / self.rate


@dataclass(frozen=True, slots=True)
class Kill:
    at_s: float  # seconds after the load started
    target: int  # a worker index (1-based) or a Kafka node id


def worker_kills(spec: ChaosSpec) -> Iterator[Kill]:
    """Which worker is `kill -9`ed when, endless: the run takes as many as its load lasts."""
    rng = random.Random(f"worker-kills-{spec.seed}")  # noqa: S311 - a schedule, not security
    at = 0.0
    while True:
        at += spec.kill_every_s * rng.uniform(0.5, 1.5)
        yield Kill(round(at, 2), rng.randint(1, spec.workers))


def broker_kill(spec: ChaosSpec) -> Kill | None:
    """The one broker kill: a node other than the first, in the first half of the load."""
    if not spec.broker_kill or spec.brokers < 3:
        return None  # with fewer than 3 nodes, min.insync.replicas cannot hold with one down
    rng = random.Random(f"broker-kill-{spec.seed}")  # noqa: S311 - a schedule, not security
    earliest = spec.kill_every_s * 1.5
    latest = max(earliest, spec.expected_load_s / 2)
    return Kill(round(rng.uniform(earliest, latest), 2), rng.randint(2, spec.brokers))


def load_spec(spec: ChaosSpec) -> loadgen.LoadSpec:
    """The commands: loadgen draws every choice from this seed (only issued_at is the clock)."""
    return loadgen.LoadSpec(
        commands=spec.commands,
        rate=spec.rate,
        auctions=spec.auctions,
        seed=spec.seed,
        run_id=f"C{spec.seed}",
    )
