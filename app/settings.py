"""Every setting outbid reads from the environment, in one typed, frozen object.

The README's settings table is this module in prose; a test keeps the two in step
(and checks docker-compose.yml uses only names defined here).
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """outbid's configuration; field names map to env vars (see `env_name`)."""

    model_config = SettingsConfigDict(env_prefix="OUTBID_", frozen=True, extra="ignore")

    # The two names shared with every other Kafka/Redis tool carry no prefix.
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    # May hold a password (redis://:secret@host:6379/0, rediss:// for TLS): never logged.
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"), validation_alias="REDIS_URL"
    )

    # Kafka client security (docs/security.md): one set for every client outbid creates, read
    # through `kafka_client_config()`. Passwords are SecretStr: never logged, never printed.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_sasl_password_file: Path | None = None  # instead of the password: a file holding it
    kafka_ssl_ca_file: Path | None = None  # PEM CA bundle the brokers' certificates chain to
    kafka_ssl_cert_file: Path | None = None  # PEM client certificate (mTLS)
    kafka_ssl_key_file: Path | None = None  # PEM client key (mTLS), unencrypted

    topic_prefix: str = ""
    topics_file: Path = REPO_ROOT / "topics.yaml"
    state_dir: Path = REPO_ROOT / ".outbid"
    # How many recent command ids each auction remembers to absorb client retries (idempotency window).
    recent_commands: int = Field(default=128, ge=1, le=100_000)
    kafka_heap: str = "512m"
    cache_dir: Path | None = None  # Kafka jars; default $XDG_CACHE_HOME/outbid or ~/.cache/outbid
    web_bind: str = "127.0.0.1"
    table_cache_mb: int = Field(default=16, ge=1, le=4096)
    # Redis keys: {namespace}:auction:{id} (hash), {namespace}:hot (zset), {namespace}:changes (pub/sub)
    redis_namespace: str = "outbid"
    redis_enabled: bool = True
    # A worker killed without leaving the group holds its partitions until this expires.
    session_timeout_s: float = Field(default=10.0, ge=3, le=300)
    # Table checkpoint snapshots (docs/snapshots.md): where, how often, how many kept.
    snapshot_dir: Path | None = None  # default: {state_dir}/snapshots (share it between workers)
    snapshot_interval_s: float = Field(default=60.0, ge=0)  # 0 and every_writes 0: off
    snapshot_every_writes: int = Field(default=100_000, ge=0)
    snapshot_keep: int = Field(default=3, ge=1, le=1000)
    # Or a URL: file:///path (the same as snapshot_dir), or an S3-compatible object store,
    # s3://bucket/prefix (the way to share snapshots between machines), with
    # its endpoint (SeaweedFS, MinIO, ...; empty: AWS), region and credentials (empty: boto3's
    # own chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role).
    snapshot_url: str = Field(default="", pattern=r"^(s3://[^/\s]+(/\S*)?|file:///\S*)?$")
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    # Per-auction aggregate snapshots on auction-snapshots every N events (0: off).
    aggregate_snapshot_every: int = Field(default=100, ge=0)
    # The worker's stable name (default: host name and web port); see `worker_instance`.
    instance: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    # The engine: the longest a transaction stays open under a backlog (it commits sooner as soon
    # as the worker has caught up with its input), records per consume() call, decoded auctions
    # kept in memory per partition.
    transaction_max_s: float = Field(default=0.25, gt=0, le=60)
    consume_batch: int = Field(default=2_000, ge=1, le=100_000)
    cache_auctions: int = Field(default=20_000, ge=1)
    # HTTP identity (docs/security.md): bearer tokens for the POST routes, from this file
    # (`outbid tokens create`). Required when web_bind is not a loopback address; without it on
    # loopback, POSTs take identities from the body (dev mode). Per-principal token bucket.
    http_tokens_file: Path | None = None
    http_rate_per_s: float = Field(default=20.0, gt=0, le=1_000_000)
    http_burst: int = Field(default=40, ge=1, le=1_000_000)
    http_auth_reads: bool = False  # GET /auctions/... and /live/... need a token too

    def topic(self, name: str) -> str:
        """The live name of a topics.yaml topic (with OUTBID_TOPIC_PREFIX applied)."""
        return f"{self.topic_prefix}{name}"

    @property
    def redis_prefix(self) -> str:
        return f"{self.topic_prefix}{self.redis_namespace}"

    @property
    def snapshot_root(self) -> Path:
        return self.snapshot_dir or self.state_dir / "snapshots"

    @property
    def group_id(self) -> str:
        """The workers' consumer group, and the prefix of their transactional ids and snapshots."""
        return f"{self.topic_prefix}outbid"

    def kafka_sasl_secret(self) -> str:
        """The SASL password, from OUTBID_KAFKA_SASL_PASSWORD or the file it names."""
        if self.kafka_sasl_password_file is None:
            return self.kafka_sasl_password.get_secret_value()
        try:
            return self.kafka_sasl_password_file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"OUTBID_KAFKA_SASL_PASSWORD_FILE: cannot read {self.kafka_sasl_password_file}: "
                f"{exc.strerror}"
            ) from exc

    def kafka_client_config(self) -> dict[str, Any]:
        """bootstrap.servers and the security settings, as librdkafka names them: the base of
        every Kafka client outbid creates (each adds its own settings on top)."""
        protocol = self.kafka_security_protocol
        config: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        if protocol == "PLAINTEXT":
            return config  # exactly the clients of an unsecured cluster, no security.* key
        config["security.protocol"] = protocol.lower()
        if protocol.startswith("SASL_"):
            password = self.kafka_sasl_secret()
            if not self.kafka_sasl_username or not password:
                raise ConfigurationError(
                    f"OUTBID_KAFKA_SECURITY_PROTOCOL={protocol} needs credentials: set "
                    "OUTBID_KAFKA_SASL_USERNAME and OUTBID_KAFKA_SASL_PASSWORD "
                    "(or OUTBID_KAFKA_SASL_PASSWORD_FILE)"
                )
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = password
        if protocol.endswith("SSL"):
            if self.kafka_ssl_ca_file is not None:
                config["ssl.ca.location"] = str(self.kafka_ssl_ca_file)
            if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
                raise ConfigurationError(
                    "mTLS needs both OUTBID_KAFKA_SSL_CERT_FILE and OUTBID_KAFKA_SSL_KEY_FILE"
                )
            if self.kafka_ssl_cert_file is not None:
                config["ssl.certificate.location"] = str(self.kafka_ssl_cert_file)
                config["ssl.key.location"] = str(self.kafka_ssl_key_file)
        return config

    def worker_instance(self, web_port: int) -> str:
        """This worker's stable identity: its static group membership (group.instance.id) and
        its transactional id. The same after a restart, so the new process takes the old one's
        place (and fences its open transaction) without a rebalance."""
        return self.instance or f"{socket.gethostname()}-{web_port}"


ENV_NAMES: dict[str, str] = {
    name: (
        field.validation_alias
        if isinstance(field.validation_alias, str)
        else f"OUTBID_{name.upper()}"
    )
    for name, field in Settings.model_fields.items()
}


def load_settings() -> Settings:
    """Read the environment; a bad value becomes a ConfigurationError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_NAMES.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid setting(s): {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
