"""Debian's redis-server on loopback, with its own data folder."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from app.devstack import processes
from app.devstack.system import require
from app.errors import DevStackError

READY_TIMEOUT_S = 15.0


@dataclass(slots=True)
class RedisServer:
    data_dir: Path
    port: int = 6379
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> None:
        server = require("redis-server")
        processes.require_free(self.port, "Redis", "--redis-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        self.pid = processes.spawn(cmd, self.log_file).pid
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.pid and not processes.alive(self.pid):
                raise DevStackError(
                    f"redis-server exited at start-up:\n{processes.tail(self.log_file)}"
                )
            if ping(self.port):
                return
            time.sleep(0.1)
        raise DevStackError(
            f"redis-server on port {self.port} did not answer PING in {READY_TIMEOUT_S:.0f}s"
        )

    def stop(self) -> None:
        if self.pid:
            processes.stop(self.pid)
            self.pid = None


def ping(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
