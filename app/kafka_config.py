"""What the Kafka client settings mean to the people and tools around the clients.

`Settings.kafka_client_config()` builds the librdkafka configuration every client starts from.
This module turns a refused connection into an error naming the setting to fix, and writes the
same settings as a Java client properties file for the Apache Kafka CLI (`--command-config`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from app.errors import KafkaUnavailableError

# The librdkafka configuration of a client: bootstrap.servers plus the security settings.
KafkaConfig = Mapping[str, Any]
PROBE_TIMEOUT_S = 5.0
CREDENTIALS = "OUTBID_KAFKA_SASL_USERNAME / OUTBID_KAFKA_SASL_PASSWORD"
PROTOCOL = "OUTBID_KAFKA_SECURITY_PROTOCOL"
JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def bootstrap_of(kafka: Mapping[str, Any]) -> str:
    return str(kafka["bootstrap.servers"])


def explain(error: KafkaError) -> str | None:
    """The setting to fix for an authentication or TLS failure; None for anything else."""
    text = error.str()
    lowered = text.lower()
    if error.code() == KafkaError._AUTHENTICATION or "authentication" in lowered:
        return f"authentication failed: check {CREDENTIALS} ({text})"
    if "certificate verify failed" in lowered or "ssl handshake failed" in lowered:
        return (
            f"TLS handshake failed: check OUTBID_KAFKA_SSL_CA_FILE (the CA of the brokers' "
            f"certificates) and {PROTOCOL} ({text})"
        )
    if "incorrect security.protocol" in lowered or "ssl listener" in lowered:
        return (
            f"the broker speaks another protocol: check {PROTOCOL} (e.g. SASL_SSL for a "
            f"secured cluster) ({text})"
        )
    if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED or "authoriz" in lowered:
        return (
            f"not authorized: the principal {CREDENTIALS} names lacks an ACL for this "
            f"(see infra/kafka/acls.yaml) ({text})"
        )
    return None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def diagnose(kafka: KafkaConfig, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Connect once with these settings and say which setting is wrong, if one is."""
    seen: list[KafkaError] = []
    collected = _Collect()
    # A private logger, never in the tree (LOG001): its lines are read here, never printed.
    logger = logging.Logger("outbid.kafka-probe")  # noqa: LOG001
    logger.addHandler(collected)
    # The stubs type AdminClient's config as scalars only; librdkafka takes callables too.
    config: dict[str, Any] = {**kafka, "error_cb": seen.append, "logger": logger}
    probe = AdminClient(config)
    try:
        probe.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        seen.append(exc.args[0])
    probe.poll(0.5)  # error_cb runs only from poll()
    for error in seen:
        reason = explain(error)
        if reason:
            return reason
    # A TLS or SASL listener closes a plaintext client's first request (ApiVersions) unanswered.
    if any("APIVERSION_QUERY" in line and "Disconnected" in line for line in collected.lines):
        return (
            f"the broker closed the connection at the first request: check {PROTOCOL} "
            "(e.g. SASL_SSL for a secured cluster)"
        )
    return None


def unavailable(
    kafka: Mapping[str, Any], exc: KafkaException | None = None
) -> KafkaUnavailableError:
    """The error for a cluster that did not answer: the setting to fix when the cause is
    security, else where to point KAFKA_BOOTSTRAP_SERVERS."""
    where = bootstrap_of(kafka)
    cause = explain(exc.args[0]) if exc is not None else None
    reason = cause or diagnose(kafka)
    if reason:
        return KafkaUnavailableError(f"Kafka at {where}: {reason}")
    detail = f" ({exc.args[0]})" if exc is not None else ""
    return KafkaUnavailableError(
        f"Kafka at {where} did not answer{detail}. Start the local stack with `outbid dev up`, "
        "or point KAFKA_BOOTSTRAP_SERVERS at a running cluster."
    )


def _escape(value: str) -> str:
    """A java.util.Properties value (backslashes, newlines; '=' and ':' need no escape in values)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def java_properties(kafka: Mapping[str, Any]) -> str:
    """The Java client's properties for the same security settings (no bootstrap: the tools take
    --bootstrap-server). Empty for PLAINTEXT."""
    protocol = str(kafka.get("security.protocol", "plaintext")).upper()
    if protocol == "PLAINTEXT":
        return ""
    lines = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        mechanism = str(kafka["sasl.mechanism"])
        username = str(kafka["sasl.username"]).replace('"', '\\"')
        password = str(kafka["sasl.password"]).replace('"', '\\"')
        lines["sasl.mechanism"] = mechanism
        lines["sasl.jaas.config"] = (
            f'{JAAS_MODULES[mechanism]} required username="{username}" password="{password}";'
        )
    if "ssl.ca.location" in kafka:
        lines["ssl.truststore.type"] = "PEM"
        lines["ssl.truststore.location"] = str(kafka["ssl.ca.location"])
    if "ssl.certificate.location" in kafka:
        lines["ssl.keystore.type"] = "PEM"
        lines["ssl.keystore.certificate.chain"] = Path(
            kafka["ssl.certificate.location"]
        ).read_text()
        lines["ssl.keystore.key"] = Path(kafka["ssl.key.location"]).read_text()
    return "".join(f"{k}={_escape(v)}\n" for k, v in lines.items())


def write_command_config(kafka: Mapping[str, Any]) -> Path | None:
    """A 0600 temporary properties file for `--command-config`; None for PLAINTEXT. The caller
    deletes it."""
    text = java_properties(kafka)
    if not text:
        return None
    fd, name = tempfile.mkstemp(prefix="outbid-kafka-", suffix=".properties")  # mode 0600
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return Path(name)
