"""Find the system programs the stack needs, installing Debian packages when we are root."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from app.errors import DevStackError

log = logging.getLogger(__name__)

# program -> Debian package that provides it
PACKAGES = {
    "redis-server": "redis-server",
    "kcat": "kcat",
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "chromium": "chromium",
}


def require(program: str, *, install: bool = True) -> str:
    """The path of `program`; apt-get installs its package first when missing and we are root."""
    found = shutil.which(program)
    if found:
        return found
    package = PACKAGES.get(program, program)
    command = f"apt-get install -y {package}"
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        log.warning("%s not found: running `%s`", program, command)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", package],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:  # a stale package index is the usual cause
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            result = subprocess.run(
                ["apt-get", "install", "-y", "-q", package],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        found = shutil.which(program)
        if found:
            return found
        raise DevStackError(f"`{command}` failed:\n{result.stderr[-2000:]}")
    raise DevStackError(f"{program} is not installed; install it with: sudo {command}")


def java_major() -> int:
    java = require("java", install=False)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    # 'openjdk version "17.0.15" 2025-04-15'
    try:
        version = out.split('"')[1]
    except IndexError as exc:
        raise DevStackError(
            f"could not read the Java version from `java -version`: {out!r}"
        ) from exc
    major = version.split(".")[0]
    return int(major) if major.isdigit() else 0


def require_java(minimum: int = 17) -> str:
    try:
        java = require("java", install=False)
    except DevStackError as exc:
        raise DevStackError(
            f"Java {minimum}+ is needed to run Apache Kafka and was not found on PATH; "
            "install it with: sudo apt-get install -y openjdk-17-jre-headless"
        ) from exc
    if java_major() < minimum:
        raise DevStackError(
            f"Kafka 4 needs Java {minimum}+, but `java -version` is older; install openjdk-17"
        )
    return java
