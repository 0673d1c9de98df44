"""`settle`: after `apply`, ask for the plan until the cluster shows the changes (each broker
answers metadata from its own cache, and a lagging one reports a new topic missing)."""

from __future__ import annotations

import pytest

from app.errors import TopicsDriftError
from app.topics import admin
from app.topics.admin import Change, Plan

MISSING = Plan(brokers=3, changes=[Change("t", "create", "partitions=8")])
CLEAN = Plan(brokers=3)


def plans(monkeypatch: pytest.MonkeyPatch, *answers: Plan) -> list[Plan]:
    """Make admin.plan answer `answers` in turn (the last one forever); returns the answers
    not given yet."""
    left = list(answers)

    def answer(*_args: object, **_kwargs: object) -> Plan:
        return left.pop(0) if len(left) > 1 else left[0]

    monkeypatch.setattr(admin, "plan", answer)
    monkeypatch.setattr(admin, "apply", lambda *_a, **_k: None)
    return left


def test_a_lagging_broker_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # a clean answer between two stale ones is not enough: three clean ones in a row are
    left = plans(monkeypatch, MISSING, CLEAN, MISSING, CLEAN, CLEAN, CLEAN, MISSING)
    settled = admin.settle(None, None, {}, pause_s=0)  # type: ignore[arg-type]
    assert settled.changes == []
    assert left == [MISSING]  # it stopped asking after the third clean plan in a row


def test_it_gives_up_after_the_timeout_with_the_last_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    plans(monkeypatch, MISSING)
    settled = admin.settle(None, None, {}, timeout_s=0.05, pause_s=0.01)  # type: ignore[arg-type]
    assert settled.changes == MISSING.changes


def test_reconcile_says_what_the_cluster_still_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    plans(monkeypatch, MISSING)
    monkeypatch.setattr(admin, "SETTLE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(
        admin, "settle", lambda *a, **k: Plan(brokers=3, changes=list(MISSING.changes))
    )
    with pytest.raises(
        TopicsDriftError, match=r"(?s)still differs from topics.yaml.*create t: partitions=8"
    ):
        admin.reconcile(None, None, {})  # type: ignore[arg-type]
