"""SeaweedFS (`weed server -s3`) on loopback: a real S3-compatible object store for table snapshots.

Built once from its Go module (the Go module proxy is reachable where no binary download is) into
the cache folder next to the Kafka jars, so the second start takes a second. `go install
module@version` refuses SeaweedFS (its go.mod has replace directives), so the module is
downloaded, copied and built in place.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.devstack import processes
from app.devstack.jars import cache_root
from app.devstack.system import require
from app.errors import DevStackError

MODULE = "github.com/seaweedfs/seaweedfs"
# Served by the Go module proxy here; its go.mod needs Go 1.26.6 or newer.
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
BUILD_TIMEOUT_S = 3600.0
READY_TIMEOUT_S = 90.0


def weed_binary(progress: bool = True) -> Path:
    """The cached `weed` binary, built from the Go module on first use."""
    binary = cache_root() / f"seaweedfs-{VERSION}" / "weed"
    if binary.exists():
        return binary
    go = require("go")
    if progress:
        print(f"building SeaweedFS {VERSION} from its Go module (once; minutes)", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    try:
        found = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=BUILD_TIMEOUT_S,
            env=env,
        )
        source = Path(json.loads(found.stdout)["Dir"])
        with tempfile.TemporaryDirectory(prefix="outbid-weed-") as scratch:
            tree = Path(scratch) / "src"
            shutil.copytree(source, tree)
            for path in tree.rglob("*"):  # the module cache is read-only
                path.chmod(path.stat().st_mode | 0o200)
            partial = binary.with_suffix(".partial")
            subprocess.run(
                [go, "build", "-o", str(partial), "./weed"],
                cwd=tree,
                capture_output=True,
                text=True,
                check=True,
                timeout=BUILD_TIMEOUT_S,
                env=env,
            )
            partial.replace(binary)
    except subprocess.CalledProcessError as exc:
        raise DevStackError(
            f"building SeaweedFS failed ({' '.join(exc.cmd)}):\n{exc.stderr[-2000:]}"
        ) from exc
    except (subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
        raise DevStackError(f"building SeaweedFS failed: {exc}") from exc
    return binary


@dataclass(slots=True)
class SeaweedS3:
    """One `weed server` process: master, volume, filer and the S3 gateway, loopback only."""

    data_dir: Path
    port: int = 8333  # the S3 endpoint; the other services take free ports
    access_key: str = field(default_factory=lambda: "outbid-" + secrets.token_hex(4))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "weed.log"

    def start(self) -> None:
        weed = weed_binary()
        processes.require_free(self.port, "SeaweedFS S3", "--s3-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "outbid",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        ports = [processes.free_port() for _ in range(7)]
        cmd = [
            str(weed),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}",
            f"-master.port={ports[0]}",
            f"-master.port.grpc={ports[1]}",
            "-master.telemetry=false",  # no internet here, and nothing to report
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports[2]}",
            f"-volume.port.grpc={ports[3]}",
            # Every bucket is a collection that grows its own volumes (7 at a time): room for many
            # buckets (one per test); volumes are files that grow as written, not preallocated.
            "-volume.max=500",
            "-filer",
            f"-filer.port={ports[4]}",
            f"-filer.port.grpc={ports[5]}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports[6]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        (self.data_dir / "data").mkdir(exist_ok=True)
        self.pid = processes.spawn(cmd, self.log_file).pid
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until a bucket can be created and listed: the gateway answers before its filer does."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.pid and not processes.alive(self.pid):
                raise DevStackError(f"weed exited at start-up:\n{processes.tail(self.log_file)}")
            if _listening(self.port):
                try:
                    client = self.client()
                    client.create_bucket(Bucket="outbid-ready")
                    client.list_objects_v2(Bucket="outbid-ready")
                except Exception as exc:
                    last = exc
                else:
                    return
            time.sleep(0.5)
        raise DevStackError(
            f"SeaweedFS S3 on port {self.port} not ready in {READY_TIMEOUT_S:.0f}s ({last}):\n"
            f"{processes.tail(self.log_file)}"
        )

    def client(self) -> Any:  # boto3 clients are untyped
        import boto3  # noqa: PLC0415

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def stop(self) -> None:
        if self.pid:
            processes.stop(self.pid)
            self.pid = None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
