"""Debian's redis-server on loopback, with its own data folder; optionally with a password
(`requirepass`) and TLS only (a CA and a server certificate generated into the data folder).

The password goes to a 0600 config file, never the command line (`ps` shows that to every
user), and `url` is the only place it appears: print `redacted(url)`.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from app.devstack import processes
from app.devstack.system import require
from app.errors import DevStackError

READY_TIMEOUT_S = 15.0


@dataclass(slots=True)
class RedisServer:
    data_dir: Path
    port: int = 6379
    pid: int | None = None
    password: str | None = None  # requirepass; clients put it in the URL (redis://:pw@...)
    tls: bool = False  # TLS on `port`, no plaintext port; clients trust `ca_file`

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={quote(str(self.ca_file))}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def start(self) -> None:
        server = require("redis-server")
        processes.require_free(self.port, "Redis", "--redis-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(f"requirepass {self.password}\n" if self.password else "")
        port_args = ["--port", str(self.port)]
        if self.tls:
            tls_dir = self.ca_file.parent
            _certificates(tls_dir)
            port_args = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(tls_dir / "server.crt"),
                "--tls-key-file",
                str(tls_dir / "server.key"),
                "--tls-ca-cert-file",
                str(self.ca_file),
                "--tls-auth-clients",
                "no",  # server authentication only: the password authenticates clients
            ]
        cmd = [
            server,
            str(config),
            "--bind",
            "127.0.0.1",
            *port_args,
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
            if ping(self.port, tls=self.tls):
                return
            time.sleep(0.1)
        raise DevStackError(
            f"redis-server on port {self.port} did not answer PING in {READY_TIMEOUT_S:.0f}s"
        )

    def stop(self) -> None:
        if self.pid:
            processes.stop(self.pid)
            self.pid = None


def ping(port: int, host: str = "127.0.0.1", *, tls: bool = False) -> bool:
    """Whether a Redis answers on `port`: PONG, or NOAUTH from one that needs a password."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as raw:
            if not tls:
                return _pong(raw)
            # only "is it up": the certificate is checked by the real clients
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with context.wrap_socket(raw, server_hostname=host) as sock:
                return _pong(sock)
    except OSError:
        return False


def _pong(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))


def redacted(url: str) -> str:
    """`url` with its password replaced by ***, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it (kept across starts)."""
    if (folder / "server.crt").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    openssl = require("openssl")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
         "/CN=outbid dev Redis CA", "-keyout", "ca.key", "-out", "ca.crt"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", "server.key", "-out", "server.csr"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "30", "-out", "server.crt", "-extfile", "san.cnf"],
    ]  # fmt: skip
    (folder / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    for args in steps:
        done = subprocess.run(
            [openssl, *args], cwd=folder, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise DevStackError(f"openssl {args[0]} failed: {done.stderr[-1000:]}")
