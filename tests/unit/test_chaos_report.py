"""What a chaos run reports: find-hanging's table, the workers that stopped by themselves, and
a verdict that fails on a hanging transaction or lag left over as surely as on `verify`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from app import chaos
from app.audit.checks import Findings
from app.chaos.scenario import _Workers
from app.devstack import processes
from app.devstack.workers import WorkerSpec

# `kafka-transactions find-hanging` prints a tab-separated table (Kafka 4.1), a header alone
# when nothing hangs (captured from the tool against a real broker).
HEADER = "Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDuration(min)\t\n"
ROW = "c.bid-commands-dlq\t0        \t1001      \t0            \t3               \t36         \t1796025904866\t4            \t\n"


def test_find_hanging_with_only_its_header_found_nothing() -> None:
    assert chaos.parse_find_hanging(HEADER) == []


def test_find_hanging_rows_are_read_by_column() -> None:
    [row] = chaos.parse_find_hanging(HEADER + ROW)
    assert row["Topic"] == "c.bid-commands-dlq"
    assert (row["Partition"], row["ProducerId"], row["StartOffset"]) == ("0", "1001", "36")


def test_find_hanging_output_that_is_not_its_table_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="unexpected find-hanging output"):
        chaos.parse_find_hanging("Exception in thread main: TimeoutException\n")
    with pytest.raises(ValueError, match="unexpected find-hanging row"):
        chaos.parse_find_hanging(HEADER + "c.bid-commands 0 1001\n")


def test_a_worker_that_exits_by_itself_is_counted_and_a_killed_one_is_not(tmp_path: Path) -> None:
    specs = [WorkerSpec(i, processes.free_port(), tmp_path / f"worker-{i}") for i in (1, 2, 3)]
    said: list[str] = []
    workers = _Workers(specs, {}, restart_after_s=60, say=said.append)
    workers.pids = {
        1: processes.spawn(["sleep", "30"], specs[0].log_file).pid,
        2: processes.spawn(
            ["sh", "-c", "echo 'app.errors.EngineError: Kafka refused the transaction'; exit 1"],
            specs[1].log_file,
        ).pid,
        3: processes.spawn(["sleep", "30"], specs[2].log_file).pid,
    }
    try:
        deadline = time.monotonic() + 10
        while processes.alive(workers.pids[2]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers.kill(1)
        workers.supervise("load", restart=False)
        workers.supervise("catch-up", restart=False)  # the killed one is never an exit later
    finally:
        workers.stop_all()
    [stopped] = workers.exits
    assert (stopped.worker, stopped.phase) == (2, "load")
    assert "EngineError" in stopped.last_error
    assert sorted(workers.down) == [1, 2]  # both restart after restart_after_s
    assert any("worker 2 stopped by itself" in line for line in said)


def _result(findings: Findings) -> chaos.ChaosResult:
    return chaos.ChaosResult(
        spec=chaos.ChaosSpec(seed=832),
        sent={"bid": 10},
        kills=[chaos.Kill(4.2, 2)],
        exits=[chaos.WorkerExit(3, 17.5, "load", "EngineError: Kafka refused the transaction")],
        lag=0,
        findings=findings,
    )


def test_workers_that_stopped_by_themselves_are_in_the_json_and_the_summary() -> None:
    result = _result(Findings())
    summary = result.as_json()
    assert summary["seed"] == 832
    assert summary["worker_exits"] == 1
    assert summary["worker_exit_details"] == [
        {
            "worker": 3,
            "at_s": 17.5,
            "phase": "load",
            "last_error": "EngineError: Kafka refused the transaction",
        }
    ]
    assert summary["worker_kill_schedule"] == [[4.2, 2]]
    lines = "\n".join(result.summary())
    assert "chaos seed 832" in lines
    assert "workers that stopped by themselves: 1 (worker 3 at 18s (load))" in lines


def test_the_run_fails_on_a_hanging_transaction_or_lag_even_when_verify_passes() -> None:
    findings = Findings()
    passing = _result(findings)
    assert passing.ok is findings.ok
    hanging = replace(
        passing, hanging=[{"broker": "2", **chaos.parse_find_hanging(HEADER + ROW)[0]}]
    )
    assert not hanging.ok
    assert "broker 2: c.bid-commands-dlq[0] producer 1001" in "\n".join(hanging.summary())
    assert not replace(passing, hanging_errors=["broker 3: find-hanging failed"]).ok
    assert not replace(passing, lag=5).ok
    assert not replace(passing, lag=None).ok
