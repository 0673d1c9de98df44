"""outbid worker processes, started with the standard Faust command line.

Exactly what a user runs: `faust -A app --datadir DIR worker -l info --web-port P --web-host H`.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app.devstack import processes
from app.devstack.stack import StackState, save_state, security
from app.errors import DevStackError
from app.settings import Settings

FIRST_WEB_PORT = 6066
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "worker.log"

    def command(self) -> list[str]:
        faust = str(Path(sys.executable).with_name("faust"))
        return [
            faust,
            "-A",
            "app",
            "--datadir",
            str(self.data_dir / "data"),
            "worker",
            "-l",
            "info",
            "--web-port",
            str(self.port),
            "--web-host",
            self.host,
        ]


def start(spec: WorkerSpec, env: dict[str, str]) -> int:
    processes.require_free(spec.port, f"worker {spec.index}", "--worker-port")
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    return processes.spawn(spec.command(), spec.log_file, env=env).pid


def get_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own loopback URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an error response left open leaks its socket (a ResourceWarning)
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_ready(
    specs: list[WorkerSpec], pids: list[int], timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Until every worker's /readyz says ready at the same moment (no rebalance in flight)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for spec, pid in zip(specs, pids, strict=True):
            if not processes.alive(pid):
                raise DevStackError(
                    f"worker {spec.index} exited; last lines of {spec.log_file}:\n"
                    f"{processes.tail(spec.log_file, 30)}"
                )
        if all(get_json(f"{s.url}/readyz")[0] == 200 for s in specs):
            return
        time.sleep(0.5)
    raise DevStackError(f"workers not ready after {timeout_s:.0f}s; see {specs[0].log_file}")


def worker_env(settings: Settings, state: StackState) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": state.kafka, "REDIS_URL": state.redis}
    if state.secure:  # the worker principal (infra/kafka/acls.yaml), never a super user
        env.update(security(settings).env("worker"))
    return env


def ensure(settings: Settings, state: StackState, count: int) -> StackState:
    """Start workers until `count` run (topics must exist: run `outbid topics apply` first)."""
    running = [w for w in state.workers if processes.alive(int(w["pid"]))]
    used = {int(w["port"]) for w in running}
    specs, pids = [], []
    for w in running:
        specs.append(WorkerSpec(int(w["index"]), int(w["port"]), Path(str(w["data_dir"]))))
        pids.append(int(w["pid"]))
    port = FIRST_WEB_PORT
    index = max((int(w["index"]) for w in running), default=0)
    while len(specs) < count:
        while port in used or not processes.port_free(port):
            port += 1
        index += 1
        spec = WorkerSpec(index, port, settings.state_dir / "workers" / f"worker-{index}")
        pids.append(start(spec, worker_env(settings, state)))
        specs.append(spec)
        used.add(port)
        state.workers = [
            *running,
            *[
                {
                    "index": s.index,
                    "port": s.port,
                    "url": s.url,
                    "pid": p,
                    "data_dir": str(s.data_dir),
                }
                for s, p in zip(specs[len(running) :], pids[len(running) :], strict=True)
            ],
        ]
        save_state(settings, state)
    wait_ready(specs, pids)
    return state
