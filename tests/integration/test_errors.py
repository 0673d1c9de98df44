"""Bad input to the CLI ends in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_outbid

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OUTBID_STATE_DIR": str(tmp_path / "state"), **extra}


def test_malformed_topics_yaml_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("version: 1\ntopics:\n  bid-commands: {partitons: 3}\n")
    result = run_outbid("topics", "check", env=_env(tmp_path, OUTBID_TOPICS_FILE=str(bad)))
    assert result.returncode == 2
    assert "topics.bid-commands.partitons: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_topics_yaml_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("version: 1\ntopics: [unclosed\n")
    result = run_outbid("topics", "apply", env=_env(tmp_path, OUTBID_TOPICS_FILE=str(bad)))
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr


def test_unreachable_bootstrap_server_tells_how_to_fix_it(tmp_path: Path) -> None:
    result = run_outbid(
        "topics", "check", env=_env(tmp_path, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"), timeout=60
    )
    assert result.returncode == 2
    assert "Kafka at 127.0.0.1:1 did not answer" in result.stderr
    assert "outbid dev up" in result.stderr
    assert "Traceback" not in result.stderr


def _path_without(tmp_path: Path, *programs: str) -> str:
    """A PATH with python but without `programs` (symlinks to everything else we need)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("redis-server", "kcat", "mvn", "java", "apt-get"):
        found = shutil.which(tool)
        if found and tool not in programs:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_missing_java_is_reported_with_the_install_command(tmp_path: Path) -> None:
    env = _env(tmp_path, PATH=_path_without(tmp_path, "java"))
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("REDIS_URL", None)
    result = run_outbid("kafka", "kafka-topics", "--version", env=env)
    assert result.returncode == 2
    assert "Java 17+ is needed" in result.stderr
    assert "apt-get install" in result.stderr


def test_missing_maven_is_reported_with_the_install_command(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        PATH=_path_without(tmp_path, "mvn", "apt-get"),
        OUTBID_CACHE_DIR=str(tmp_path / "cache"),
    )
    result = run_outbid("kafka", "kafka-topics", "--version", env=env)
    assert result.returncode == 2
    assert "mvn is not installed" in result.stderr
    assert "apt-get install -y maven" in result.stderr


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    result = run_outbid("topics", "check", env=_env(tmp_path, OUTBID_RECENT_COMMANDS="many"))
    assert result.returncode == 2
    assert "OUTBID_RECENT_COMMANDS" in result.stderr
