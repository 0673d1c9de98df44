"""The chaos run's schedule comes from its seed alone: `--seed` repeats the kills and the commands."""

from __future__ import annotations

import itertools
from dataclasses import replace

import orjson

from app import chaos, loadgen

SPEC = chaos.ChaosSpec(commands=20_000, rate=1_000, workers=3, brokers=3, kill_every_s=5.0)


def _kills(seed: int, count: int = 30) -> list[chaos.Kill]:
    return list(itertools.islice(chaos.worker_kills(replace(SPEC, seed=seed)), count))


def _commands(seed: int) -> list[tuple[bytes | None, object]]:
    """What the load generator sends for `seed`, without the clock's fields."""
    spec = chaos.load_spec(chaos.ChaosSpec(commands=3_000, rate=1_000, auctions=50, seed=seed))
    sent: list[tuple[bytes | None, object]] = []

    def produce(key: bytes | None, value: bytes) -> None:
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            sent.append((key, value))
            return
        if isinstance(body, dict):
            body.pop("issued_at", None)
            body.pop("closes_at", None)
        sent.append((key, body))

    loadgen.generate(replace(spec, rate=0.0), produce)  # as fast as possible: same commands
    return sent


def test_the_same_seed_gives_the_same_worker_kills() -> None:
    assert _kills(832) == _kills(832)


def test_another_seed_gives_other_worker_kills() -> None:
    assert _kills(832) != _kills(833)
    assert [k.target for k in _kills(832)] != [k.target for k in _kills(833)]


def test_worker_kills_are_kill_every_apart_on_average_and_name_every_worker() -> None:
    kills = _kills(7, count=200)
    gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(kills)]
    assert all(2.4 <= gap <= 7.6 for gap in gaps)
    assert 4.5 <= kills[-1].at_s / len(kills) <= 5.5
    assert {k.target for k in kills} == {1, 2, 3}


def test_the_same_seed_gives_the_same_broker_kill_and_another_seed_another() -> None:
    spec = replace(SPEC, seed=832)
    assert chaos.broker_kill(spec) == chaos.broker_kill(spec)
    others = {chaos.broker_kill(replace(SPEC, seed=s)) for s in range(20)}
    assert len(others) == 20


def test_the_broker_kill_is_a_node_other_than_the_first_in_the_first_half_of_the_load() -> None:
    for seed in range(50):
        kill = chaos.broker_kill(replace(SPEC, seed=seed))
        assert kill is not None
        assert kill.target in {2, 3}
        assert SPEC.kill_every_s * 1.5 <= kill.at_s <= SPEC.expected_load_s / 2


def test_no_broker_is_killed_with_fewer_than_three() -> None:
    assert chaos.broker_kill(chaos.ChaosSpec(brokers=1)) is None
    assert chaos.broker_kill(chaos.ChaosSpec(broker_kill=False)) is None


def test_the_same_seed_sends_the_same_commands_and_another_seed_others() -> None:
    first = _commands(832)
    assert len(first) == 3_000
    assert _commands(832) == first
    assert _commands(833) != first
