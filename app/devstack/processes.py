"""Start, watch and stop the stack's background processes (detached, each in its own session)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from app.errors import DevStackError


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free(port: int, what: str, option: str) -> None:
    if not port_free(port):
        raise DevStackError(
            f"port {port} (for {what}) is already in use on 127.0.0.1: stop whatever listens "
            f"there (`ss -ltnp 'sport = :{port}'` shows it) or choose another port with {option}"
        )


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
SERVER_PORTS_FROM = 10_000  # below: well-known and registered services
SERVER_PORTS_TO = 65_000  # the highest `outbid dev up --kafka-port` accepts


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux's default if unknown)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_PORTS.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port() -> int:
    """A port that is free now, for a server we are about to start (tests, private stacks)."""
    return free_port_run(1)


def free_port_run(count: int) -> int:
    """A port p with p..p+count-1 all free (Kafka node i: broker p+2i, controller p+2i+1).

    Chosen outside the kernel's ephemeral range: a port the OS hands out with bind(0) is one any
    outgoing connection can take as its local port before our server binds it. That happened: a
    3-node cluster's controller could not bind because another node's connection to the quorum
    was using the port chosen for it a moment before."""
    low, high = ephemeral_range()
    spans = [
        (start, end)
        for start, end in ((SERVER_PORTS_FROM, low - 1), (high + 1, SERVER_PORTS_TO))
        if end - start + 1 >= count
    ]
    pick = random.Random()  # noqa: S311 - spreads choices; nothing secret
    for _ in range(500):
        if spans:
            start, end = pick.choice(spans)
            port = pick.randint(start, end - count + 1)
        else:  # the ephemeral range covers every port: take what the OS offers
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port + count - 1 > SERVER_PORTS_TO:
                continue
        if all(port_free(port + i) for i in range(count)):
            return port
    raise DevStackError(f"could not find {count} adjacent free ports on 127.0.0.1")


# Popen objects of the children we started, so they are reaped (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    cmd: Sequence[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` detached from our terminal, stdout+stderr appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        child = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: Ctrl-C in the shell does not reach it
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    _children[child.pid] = child
    return child


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return _state(pid) != "Z"


def _state(pid: int) -> str:
    fields = stat_fields(pid)
    return fields[0] if fields else "?"


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the process name (which may hold spaces and
    parentheses): [0] is the state, [11] and [12] the user and system CPU time in clock ticks.
    None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def stop(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `timeout_s`."""
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not alive(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
    if alive(pid):
        raise DevStackError(f"process {pid} survived SIGKILL; check `ps -o pid,stat,cmd -p {pid}`")


def kill(pid: int) -> None:
    """kill -9, for fault tests."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
