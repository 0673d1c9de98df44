from __future__ import annotations

import logging

import pytest

from app.log_budget import LogBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_lines_are_written_the_rest_summarised_by_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    budget = LogBudget(logging.getLogger("t"), "dead letters", burst=3, interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(10):
            budget.warning("bad_json" if i % 2 else "unknown_type", "dead-lettering %d", i)
        assert [r.getMessage() for r in caplog.records] == [
            "dead-lettering 0",
            "dead-lettering 1",
            "dead-lettering 2",
        ]
        budget.flush_due()  # the interval has not passed: nothing yet
        assert len(caplog.records) == 3
        clock.now += 10
        budget.flush_due()
        assert caplog.records[-1].getMessage() == (
            "7 more dead letters in the last 10 s were not logged one by one "
            "(bad_json: 4, unknown_type: 3)"
        )
        budget.warning("bad_json", "dead-lettering %d", 10)  # a new interval: a new budget
        assert caplog.records[-1].getMessage() == "dead-lettering 10"
        clock.now += 10
        budget.flush_due()  # nothing was over the budget: no summary
        assert len(caplog.records) == 5


def test_a_quiet_interval_writes_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    budget = LogBudget(logging.getLogger("t"), "dead letters", burst=5, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        budget.warning("x", "one")
        clock.now += 60
        budget.flush_due()
    assert [r.getMessage() for r in caplog.records] == ["one"]
