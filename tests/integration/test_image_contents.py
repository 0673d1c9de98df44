"""The worker image runs what the README promises: `outbid` and `faust -A app worker` start
from the files the Dockerfile copies, installed the way the Dockerfile installs them.

There is no Docker engine here, so the checker follows the Dockerfile by hand: it reads its
WORKDIR, COPY, ENV, `RUN pip install` and CMD lines, copies those paths from the checkout into
a temporary root, installs them into a fresh virtualenv and runs, from a folder outside any
source tree, `import app`, the image's CMD with --help (which loads the Faust app as the worker
does at start) and `outbid ... --help` for every command and sub-command the click groups list.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import REPO

IGNORED = {"ARG", "EXPOSE", "FROM", "LABEL", "USER"}  # no say in which files the image holds
TIMEOUT_S = 180

# Runs inside the image's virtualenv: `outbid PATH --help` for every command path the click
# groups list (loading each group to list its own commands), in one process to keep it fast.
# A command that fails to load is still listed: its --help run reports why. A command may refuse
# with a message of its own (bench/ is not in the image); only an exception is a failure.
HELP_EVERYWHERE = """import json, sys, traceback
import click
from click.testing import CliRunner
from app.cli import main

def walk(group, path):
    ctx = click.Context(group, info_name=path[-1] if path else "outbid")
    for name in group.list_commands(ctx):
        yield [*path, name]
        try:
            command = group.get_command(ctx, name)
        except Exception:
            continue
        if isinstance(command, click.Group):
            yield from walk(command, [*path, name])

runs = []
for path in list(walk(main, [])):
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="outbid")
    error = result.exception
    failure = None
    if error is not None and not isinstance(error, SystemExit):
        failure = traceback.format_exception_only(error)[-1].strip()
    runs.append(["outbid", *path, "--help", result.exit_code, result.output, failure])
with open(sys.argv[1], "w") as out:
    json.dump(runs, out)
"""


@dataclass(frozen=True)
class Image:
    """What the Dockerfile says about the image's files, environment and start command."""

    workdir: PurePosixPath
    copies: tuple[tuple[tuple[str, ...], str], ...]  # (sources in the checkout, destination)
    env: dict[str, str]
    pip_install: tuple[str, ...]  # the arguments after `pip install`
    cmd: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    returncode: int
    output: str
    failure: str | None  # the exception, e.g. `ModuleNotFoundError: No module named 'x'`


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every run that ended in an exception, as `command line: exception`."""
        return [f"{_short(r.argv)}: {r.failure}" for r in self.runs if r.failure]

    def output_of(self, *argv: str) -> str:
        return next(r.output for r in self.runs if r.argv == argv)


def _short(argv: tuple[str, ...]) -> str:
    return shlex.join(a.strip().splitlines()[0] + " ..." if "\n" in a else a for a in argv)


def read_dockerfile(text: str) -> Image:
    if (REPO / ".dockerignore").exists():
        raise NotImplementedError("the image checker does not read .dockerignore yet")
    workdir = PurePosixPath("/")
    copies: list[tuple[tuple[str, ...], str]] = []
    env: dict[str, str] = {}
    pip_install: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    for line in text.replace("\\\n", " ").splitlines():
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if not instruction or instruction.startswith("#") or instruction in IGNORED:
            continue
        words = shlex.split(rest)
        if instruction == "WORKDIR":
            workdir = workdir / words[0]
        elif instruction == "COPY":
            copies.append(_copy(words, workdir))
        elif instruction == "ENV":
            env.update(_env(words))
        elif instruction == "RUN":
            pip_install = _pip_install(rest) or pip_install
        elif instruction == "CMD":
            cmd = tuple(json.loads(rest))
        else:
            raise NotImplementedError(f"the image checker does not model {instruction}: {line!r}")
    if not pip_install or not cmd:
        raise ValueError("the Dockerfile has no `RUN pip install` or no CMD")
    return Image(workdir, tuple(copies), env, pip_install, cmd)


def _copy(words: list[str], workdir: PurePosixPath) -> tuple[tuple[str, ...], str]:
    if any(word.startswith("--from") for word in words):
        raise NotImplementedError(f"COPY from another stage or image: {words}")
    paths = [word for word in words if not word.startswith("--")]  # --chown, --chmod
    return tuple(paths[:-1]), str(workdir / paths[-1]) + ("/" if paths[-1].endswith("/") else "")


def _env(words: list[str]) -> dict[str, str]:
    if "=" not in words[0]:  # the old form, `ENV NAME value with spaces`
        return {words[0]: " ".join(words[1:])}
    pairs = [word.partition("=") for word in words]
    return {name: value for name, _, value in pairs}


def _pip_install(run: str) -> tuple[str, ...]:
    """The arguments of the `pip install` among a RUN's `&&`-joined commands, if there is one."""
    for part in run.split("&&"):
        tokens = shlex.split(part)
        if tokens[:2] == ["pip", "install"]:
            return tuple(tokens[2:])
    return ()


def in_root(root: Path, path: str | PurePosixPath) -> Path:
    """An absolute path of the image, inside the temporary root that stands in for it."""
    return root / str(path).lstrip("/")


def stage(image: Image, repo: Path, root: Path) -> Path:
    """Copy the image's files from the checkout, as COPY does; returns its WORKDIR."""
    for sources, dest in image.copies:
        target = in_root(root, dest)
        for source in sources:
            path = repo / source
            if path.is_dir():  # COPY copies a folder's contents into the destination
                shutil.copytree(
                    path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                into = target / path.name if dest.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)
    workdir = in_root(root, image.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def make_venv(root: Path, *, with_pip: bool) -> Path:
    venv = root / "venv"
    args = [] if with_pip else ["--without-pip"]
    subprocess.run([sys.executable, "-m", "venv", *args, str(venv)], check=True)
    return venv


def pip_install(image: Image, venv: Path, workdir: Path) -> None:
    """The Dockerfile's `pip install`, run where it runs (WORKDIR). The image keeps no pip cache
    (PIP_NO_CACHE_DIR); here pip's cache is welcome, it keeps the test fast."""
    env = {k: v for k, v in image.env.items() if not k.startswith("PIP_NO_CACHE")}
    subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "--quiet", *image.pip_install],
        cwd=workdir,
        env={**os.environ, **env},
        check=True,
        timeout=900,
    )


def link_install(image: Image, venv: Path, workdir: Path) -> None:
    """A stand-in for `pip install` without the network: the staged WORKDIR on the venv's path,
    the dependencies from this interpreter's site-packages (not its editable outbid, whose
    finder only this interpreter's own .pth files start), and the console scripts the checker
    runs. Good enough to show that the checker sees a missing module; the slow test pip-installs."""
    (site_dir,) = (venv / "lib").glob("python3.*/site-packages")
    (site_dir / "image.pth").write_text(f"{workdir}\n" + "\n".join(site.getsitepackages()) + "\n")
    scripts = tomllib.loads((workdir / "pyproject.toml").read_text())["project"]["scripts"]
    (faust,) = entry_points(group="console_scripts", name=image.cmd[0])
    for name, target in {**scripts, faust.name: faust.value}.items():
        module, attribute = target.split(":")
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv / 'bin/python'}\nimport sys\nfrom {module} import {attribute}\n"
            f"sys.exit({attribute}())\n"
        )
        script.chmod(0o755)


def check_image(
    dockerfile: str,
    root: Path,
    install: Callable[[Image, Path, Path], None],
    *,
    with_pip: bool,
    mutate: Callable[[Path], None] | None = None,
) -> Report:
    """Stage the Dockerfile's files under root, install them with `install` and run every check.
    `mutate(workdir)` may change the staged files first (to prove the checker can fail)."""
    image = read_dockerfile(dockerfile)
    workdir = stage(image, REPO, root)
    if mutate is not None:
        mutate(workdir)
    venv = make_venv(root, with_pip=with_pip)
    install(image, venv, workdir)
    elsewhere = root / "elsewhere"  # no source tree in the current folder
    elsewhere.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(root / "home"),
        "COLUMNS": "100",
        **{k: str(in_root(root, v)) if v.startswith("/") else v for k, v in image.env.items()},
    }

    def run(argv: Iterable[str]) -> Run:
        argv = tuple(argv)
        done = subprocess.run(
            argv,
            check=False,
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        failure = None  # each of these checks must exit 0
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1].strip()
            failure = last if "Traceback" in done.stderr else f"exit {done.returncode}: {last}"
        return Run(argv, done.returncode, done.stdout + done.stderr, failure)

    python = str(venv / "bin/python")
    cmd = [str(in_root(root, a)) if a.startswith("/") else a for a in image.cmd]
    every_help = root / "every-help.json"
    checks = [
        [python, "-c", HELP_EVERYWHERE, str(every_help)],
        [python, "-c", "import app"],
        [*cmd, "--help"],  # loads the Faust app as `faust -A app worker` does at start
        ["outbid", "--help"],
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores, shared
        report = Report(list(pool.map(run, checks)))
    if every_help.exists():
        report.runs.extend(
            Run((*argv,), code, output, failure)
            for *argv, code, output, failure in json.loads(every_help.read_text())
        )
    return report


@pytest.mark.slow
def test_every_command_of_the_image_starts_from_the_files_it_copies(tmp_path: Path) -> None:
    report = check_image((REPO / "Dockerfile").read_text(), tmp_path, pip_install, with_pip=True)

    assert not report.problems, "\n".join(report.problems)
    assert len(report.runs) > 20  # the walk found the commands and their sub-commands
    assert "source checkout" in report.output_of("outbid", "bench", "--help")
    benchmarks = [r for r in report.runs if r.argv[:2] == ("outbid", "bench") and len(r.argv) == 4]
    assert benchmarks
    for run in benchmarks:  # the image has no bench/: each benchmark says so in one line
        assert run.returncode != 0
        assert "Error: benchmarks need a source checkout" in run.output, run.output


def _without_agents(dockerfile: str) -> str:
    lines = dockerfile.splitlines()
    assert any(line.startswith("COPY agents") for line in lines)
    return "\n".join(line for line in lines if not line.startswith("COPY agents"))


def _cli_imports_bench(workdir: Path) -> None:
    topics = workdir / "app/cli/topics.py"
    topics.write_text(topics.read_text() + "\nimport bench.throughput_stats  # noqa\n")


@pytest.mark.parametrize(
    ("drop_agents", "mutate", "missing", "failing"),
    [
        pytest.param(True, None, "agents", "faust -A app", id="image-without-agents"),
        pytest.param(
            False, _cli_imports_bench, "bench", "outbid topics --help", id="cli-imports-bench"
        ),
    ],
)
def test_the_image_check_names_a_module_the_image_does_not_hold(
    tmp_path: Path,
    drop_agents: bool,
    mutate: Callable[[Path], None] | None,
    missing: str,
    failing: str,
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    if drop_agents:
        dockerfile = _without_agents(dockerfile)

    report = check_image(dockerfile, tmp_path, link_install, with_pip=False, mutate=mutate)

    expected = f"ModuleNotFoundError: No module named '{missing}'"
    assert any(p.startswith(failing) and p.endswith(expected) for p in report.problems), (
        report.problems
    )
