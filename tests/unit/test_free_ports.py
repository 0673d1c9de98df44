"""Ports for the servers the stack and the tests start: free, and outside the ephemeral range
(where any outgoing connection may take them between the choice and the server's bind)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.devstack import processes


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = processes.ephemeral_range()
    for _ in range(2000):
        port = processes.free_port_run(6)
        assert all(not low <= p <= high for p in range(port, port + 6))
        assert port >= processes.SERVER_PORTS_FROM
        assert port + 5 <= processes.SERVER_PORTS_TO  # what `outbid dev up --kafka-port` takes
        with _server_socket() as sock:
            sock.bind(("127.0.0.1", port + 5))
            sock.listen()


def _server_socket() -> socket.socket:
    """A listening socket bound the way Kafka, Redis and aiohttp bind theirs: with SO_REUSEADDR.

    Without it, a port whose last connection is still in TIME_WAIT (any earlier test's broker in
    the same range) refuses the bind although every server could take it; a CI run failed on
    exactly that."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def test_a_port_whose_last_connection_is_in_time_wait_is_offered_and_a_server_binds_it() -> None:
    with _server_socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its port goes to TIME_WAIT
            client.recv(1)
    assert processes.port_free(port)
    with _server_socket() as again:
        again.bind(("127.0.0.1", port))
        again.listen()


def test_a_port_in_use_is_never_offered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a tiny range outside the ephemeral one, with its only port taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ranges = tmp_path / "range"
        ranges.write_text(f"{port + 1}\t65535\n")  # ephemeral: everything above the taken port
        monkeypatch.setattr(processes, "EPHEMERAL_PORTS", ranges)
        monkeypatch.setattr(processes, "SERVER_PORTS_FROM", port)
        with pytest.raises(processes.DevStackError, match="could not find 1 adjacent free ports"):
            processes.free_port()


def test_the_linux_default_when_the_range_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(processes, "EPHEMERAL_PORTS", tmp_path / "missing")
    assert processes.ephemeral_range() == (32768, 60999)
