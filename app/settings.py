"""Every setting outbid reads from the environment, in one typed, frozen object.

The README's settings table is this module in prose; a test keeps the two in step
(and checks docker-compose.yml uses only names defined here).
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path

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
