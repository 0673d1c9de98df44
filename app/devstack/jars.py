"""Resolve the Apache Kafka broker and tool jars from Maven Central, once.

The pom lives in infra/kafka/pom.xml. Jars are copied into a cache folder outside the
checkout (keyed by a hash of the pom), so a second `outbid dev up` never calls Maven.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from app.devstack.system import require
from app.errors import DevStackError
from app.settings import REPO_ROOT, get_settings

log = logging.getLogger(__name__)
POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
MARKER = ".complete"


def cache_root() -> Path:
    configured = get_settings().cache_dir
    if configured:
        return configured
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "outbid" if xdg else Path.home() / ".cache" / "outbid"


def jar_dir() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_root() / f"kafka-jars-{digest}"


def ensure_jars(progress: bool = True) -> Path:
    """The folder holding every Kafka jar; resolves them with Maven on the first call."""
    target = jar_dir()
    if (target / MARKER).exists():
        return target
    mvn = require("mvn")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    if progress:
        log.warning(
            "resolving Apache Kafka jars from Maven Central into %s (first run only)", target
        )
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        raise DevStackError(
            "Maven could not resolve the Kafka jars (is Maven Central reachable? "
            f"is ~/.m2/settings.xml sane?):\n{(result.stdout + result.stderr)[-3000:]}"
        )
    (tmp / MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a half-copied folder is never mistaken for a complete one
    return target


def classpath() -> str:
    return str(ensure_jars() / "*")
