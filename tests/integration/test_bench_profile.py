"""A tiny `outbid bench profile` against the session's real Kafka and Redis, with a real worker
and the real py-spy: the samples are taken and grouped; never how fast anything was."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import Servers, run_outbid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tiny_profile_samples_the_engine_thread(
    servers: Servers, outbid_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "profile"
    done = run_outbid(
        "bench", "profile", "--commands", "20000", "--seconds", "3", "--rate", "100",
        "--out", str(out),
        env=outbid_env,  # KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set: the bench starts no servers
        timeout=480,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = orjson.loads((out / "profile.json").read_bytes())
    assert len(report["source"]["commit"]) == 40
    assert report["config"]["commands"] == 20000
    assert report["backlog"]["cmds_per_s_while_sampled"] > 0
    assert report["steady"]["latency_while_sampled_ms"]["count"] > 0
    for part, raw in (("backlog", "backlog.txt"), ("steady", "steady.txt")):
        measured = report[part]
        assert (out / raw).stat().st_size > 0
        assert measured["threads"]["outbid-engine"] == measured["engine_samples"] > 0
        shares = measured["engine_shares"]
        assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    # under a backlog the engine works on commands; at 3,000/s it mostly waits on Kafka
    backlog = report["backlog"]["engine_shares"]
    assert any(name.startswith("step:") for name in backlog)
    steady = report["steady"]["engine_shares"]
    assert sum(v for name, v in steady.items() if name.startswith("Kafka:")) > 0.3
