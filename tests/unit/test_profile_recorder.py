"""bench/profile.py's py-spy recorder, with stand-in py-spy scripts: a py-spy that cannot attach,
or writes nothing, fails the profile with the reason; one that works leaves its file."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench import profile
from bench.profile import ProfileError


def fake_py_spy(tmp_path: Path, body: str) -> str:
    script = tmp_path / "py-spy"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def workers(pid: int = 4242) -> Any:
    return cast(Any, SimpleNamespace(pids=[pid]))


@pytest.fixture(autouse=True)
def quick_attach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "ATTACH_S", 0.3)


def test_a_py_spy_that_cannot_attach_fails_at_once_with_its_reason(tmp_path: Path) -> None:
    spy = fake_py_spy(tmp_path, 'echo "Error: Permission denied (os error 13)" >&2\nexit 1\n')
    record = profile._recorder(spy, tmp_path / "out.txt", 100, idle=False)
    ran = False
    with (
        pytest.raises(ProfileError, match=r"worker 4242 \(exit 1: Error: Permission denied"),
        record(workers()),
    ):
        ran = True
    assert not ran  # the measurement did not run for nothing


def test_a_former_runs_file_is_never_taken_for_this_ones(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("thread (1): outbid-engine;Engine.run (app/engine/loop.py:1) 9\n")
    # attaches, then exits 0 on SIGINT without writing anything
    spy = fake_py_spy(tmp_path, "trap 'exit 0' INT\nwhile true; do sleep 0.05; done\n")
    with (
        pytest.raises(ProfileError, match="recorded nothing from worker 4242"),
        profile._recorder(spy, out, 100, idle=True)(workers()),
    ):
        pass
    assert not out.exists()


def test_a_working_py_spy_is_stopped_and_leaves_its_stacks(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    body = (
        f"trap 'echo \"thread (1): outbid-engine;x (app/engine/loop.py:1) 3\" > {out}; exit 0' INT\n"
        "while true; do sleep 0.05; done\n"
    )
    with profile._recorder(fake_py_spy(tmp_path, body), out, 100, idle=False)(workers()):
        pass
    assert out.read_text().startswith("thread (1): outbid-engine")
