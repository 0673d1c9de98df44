"""Against a real secured cluster (`outbid dev up --secure`: SASL_SSL, SCRAM-SHA-512, TLS made for
the run, the StandardAuthorizer and infra/kafka/acls.yaml), every principal does what its role
needs and nothing else, and a client with wrong settings is told which setting to fix."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from app.devstack import processes
from app.devstack.security import PRINCIPALS, SecureCluster
from app.devstack.workers import get_json
from tests.conftest import run_outbid

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Variables that would make `outbid` talk to another cluster or as another principal.
FOREIGN = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")


@dataclass(frozen=True)
class Secured:
    bootstrap: str
    redis: str
    worker_url: str
    prefix: str
    security: SecureCluster
    base_env: dict[str, str]
    up_output: str
    status_output: str

    def env(self, principal: str | None, **extra: str) -> dict[str, str]:
        """`outbid`'s environment as `principal` (None: no security settings at all)."""
        env = {**self.base_env, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": self.redis}
        if principal is not None:
            env.update(self.security.env(principal))
        env.update(extra)
        return env

    def config(self, principal: str) -> dict[str, Any]:
        return self.security.client_config(self.bootstrap, principal)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """One secured broker, its topics and ACLs under a unique prefix, and one worker running as
    the `worker` principal: all started by `outbid dev up --secure`, as a user would."""
    state = tmp_path_factory.mktemp("secure-stack")
    prefix = f"t-sec-{os.getpid()}."
    base_env = {
        **{k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("OUTBID_")},
        "OUTBID_STATE_DIR": str(state),
        "OUTBID_TOPIC_PREFIX": prefix,
    }
    port = processes.free_port_run(2)
    up = run_outbid(
        *("dev", "up", "--secure", "--workers", "1", "--kafka-port", str(port)),
        *("--redis-port", str(processes.free_port())),
        env=base_env,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = run_outbid("dev", "status", "--json", env=base_env)
        info = json.loads(status.stdout)
        yield Secured(
            bootstrap=info["kafka"],
            redis=info["redis"],
            worker_url=info["workers"][0],
            prefix=prefix,
            security=SecureCluster(state / "kafka-security"),
            base_env=base_env,
            up_output=up.stdout + up.stderr,
            status_output=status.stdout + run_outbid("dev", "status", env=base_env).stdout,
        )
    finally:
        run_outbid("dev", "down", env=base_env, timeout=120)


def test_dev_up_secure_prints_each_principals_settings_but_never_a_secret(
    secured: Secured,
) -> None:
    for principal in ("worker", "ingest", "reader", "admin"):
        assert f"OUTBID_KAFKA_SASL_USERNAME={principal}" in secured.up_output
        assert str(secured.security.password_file(principal)) in secured.up_output
    for principal in PRINCIPALS:
        password = secured.security.password(principal)
        assert password not in secured.up_output
        assert password not in secured.status_output
        assert secured.security.password_file(principal).stat().st_mode & 0o777 == 0o600
    ca_key = (secured.security.tls / "ca.key").read_text()
    assert "PRIVATE KEY" not in secured.up_output
    assert ca_key not in secured.up_output
    assert '"secure": true' in secured.status_output


def _last_command_id(lines: str, auction: str) -> str:
    last = [line for line in lines.splitlines() if line.startswith(f"{auction}|")][-1]
    return str(json.loads(last.split("|", 1)[1])["command_id"])


def test_the_pipeline_runs_end_to_end_with_one_least_privilege_principal_per_role(
    secured: Secured,
) -> None:
    commands = run_outbid("sample", "--auctions", "3", "--keyed", env=secured.env(None)).stdout
    produced = run_outbid(
        *("kafka", "kafka-console-producer", "--bootstrap-server", secured.bootstrap),
        *("--topic", f"{secured.prefix}bid-commands"),
        *("--property", "parse.key=true", "--property", "key.separator=|"),
        env=secured.env("ingest"),
        input=commands,
    )
    assert produced.returncode == 0, produced.stderr

    after = _last_command_id(commands, "A-1")
    status, view = get_json(f"{secured.worker_url}/auctions/A-1?after={after}&wait_ms=30000", 40)
    assert status == 200, view
    assert view["caught_up"] is True
    assert view["auction_id"] == "A-1"
    assert view["highest_bid"] is not None

    deadline = time.monotonic() + 60  # the other auctions' commands, then verify as the reader
    while True:
        verified = run_outbid("verify", env=secured.env("reader"), timeout=180)
        if verified.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize(
    ("principal", "extra", "names"),
    [
        pytest.param(
            None,
            {"OUTBID_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "OUTBID_KAFKA_SASL_USERNAME",
            id="no-credentials",
        ),
        pytest.param(
            "reader",
            {"OUTBID_KAFKA_SASL_PASSWORD_FILE": "", "OUTBID_KAFKA_SASL_PASSWORD": "wrong"},
            "authentication failed: check OUTBID_KAFKA_SASL_USERNAME / OUTBID_KAFKA_SASL_PASSWORD",
            id="wrong-password",
        ),
        pytest.param(None, {}, "OUTBID_KAFKA_SECURITY_PROTOCOL", id="plaintext"),
    ],
)
@pytest.mark.parametrize("command", [("topics", "check"), ("verify",)], ids=["topics", "verify"])
def test_a_client_with_wrong_security_settings_is_refused_naming_the_setting_to_fix(
    secured: Secured,
    principal: str | None,
    extra: dict[str, str],
    names: str,
    command: tuple[str, ...],
) -> None:
    env = secured.env(principal, **extra)
    if not extra.get("OUTBID_KAFKA_SASL_PASSWORD_FILE", "x"):
        del env["OUTBID_KAFKA_SASL_PASSWORD_FILE"]
    done = run_outbid(*command, env=env, timeout=120)
    assert done.returncode != 0
    assert names in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _produce(config: dict[str, Any], topic: str, **extra: Any) -> KafkaError | None:
    """Produce one record; the delivery error (None: written)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10_000, **extra})
    producer.produce(topic, key=b"A-1", value=b"{}", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(15)
    assert errors, "no delivery report"
    return errors[0]


def test_ingest_writes_commands_only_and_the_reader_writes_nothing(secured: Secured) -> None:
    commands, events = f"{secured.prefix}bid-commands", f"{secured.prefix}auction-events"
    assert _produce(secured.config("ingest"), commands) is None
    refused = _produce(secured.config("ingest"), events)
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    for topic in (commands, events, f"{secured.prefix}outbid-highest_bids-changelog"):
        refused = _produce(secured.config("reader"), topic)
        assert refused is not None
        assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_another_principal_cannot_take_the_workers_transactional_ids(secured: Secured) -> None:
    instance = secured.worker_url.rsplit(":", 1)[1]
    taken = f"{secured.prefix}outbid-{os.uname().nodename}-{instance}"  # the running worker's
    for principal in ("ingest", "reader"):
        producer = Producer({**secured.config(principal), "transactional.id": taken})
        with pytest.raises(KafkaException) as refused:
            producer.init_transactions(15)
        assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        del producer  # librdkafka's destroy: no retries left behind after this test
    # the worker principal may (a restarted worker must fence its predecessor): a fresh id of its
    # prefix, so the running worker is not fenced by this test
    own = Producer({**secured.config("worker"), "transactional.id": f"{secured.prefix}outbid-x"})
    own.init_transactions(30)
    del own


def test_kafka_cli_tools_get_a_generated_command_config_and_it_is_removed(
    secured: Secured, tmp_path: Path
) -> None:
    env = secured.env("reader", TMPDIR=str(tmp_path))
    listed = run_outbid(
        "kafka", "kafka-topics", "--bootstrap-server", secured.bootstrap, "--list", env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert f"{secured.prefix}auction-events" in listed.stdout
    assert not list(tmp_path.iterdir())  # the 0600 properties file is gone with the tool
    acls = run_outbid(
        "kafka", "kafka-acls", "--bootstrap-server", secured.bootstrap, "--list",
        env=secured.env("admin"),
    )  # fmt: skip
    assert acls.returncode == 0, acls.stderr
    assert f"name={secured.prefix}outbid-, patternType=PREFIXED" in acls.stdout


def test_three_secured_brokers_replicate_over_their_authenticated_listener(
    tmp_path: Path,
) -> None:
    """`outbid dev up --secure --brokers 3`: followers fetch over SASL_SSL as `broker`, so an
    acks=all write to a topic with 3 replicas (min ISR 2) proves inter-broker traffic works."""
    prefix = f"t-sec3-{os.getpid()}."
    env = {
        **{k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("OUTBID_")},
        "OUTBID_STATE_DIR": str(tmp_path / "state"),
        "OUTBID_TOPIC_PREFIX": prefix,
    }
    up = run_outbid(
        *("dev", "up", "--secure", "--brokers", "3"),
        *("--kafka-port", str(processes.free_port_run(6))),
        *("--redis-port", str(processes.free_port())),
        env=env,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        bootstrap = json.loads(run_outbid("dev", "status", "--json", env=env).stdout)["kafka"]
        security = SecureCluster(tmp_path / "state" / "kafka-security")
        topic = f"{prefix}bid-commands"
        ingest = security.client_config(bootstrap, "ingest")
        # ACLs reach each broker through the metadata log: a broker still behind it (a loaded
        # machine, just after start) denies until it catches up.
        deadline = time.monotonic() + 60
        while (error := _produce(ingest, topic, acks="all")) is not None:
            if error.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert error is None
        admin = AdminClient(security.client_config(bootstrap, "admin"))
        deadline = time.monotonic() + 60
        while True:
            metadata = admin.list_topics(topic, timeout=15)
            isrs = {len(p.isrs) for p in metadata.topics[topic].partitions.values()}
            if isrs == {3} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(metadata.brokers) == 3
        assert isrs == {3}
    finally:
        run_outbid("dev", "down", env=env, timeout=120)
