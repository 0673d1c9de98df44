"""The Kafka security settings become one librdkafka config and one Java properties file."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from app.devstack.tools import with_command_config
from app.errors import ConfigurationError
from app.kafka_config import explain, java_properties
from app.settings import Settings


def test_plaintext_is_the_bootstrap_servers_alone() -> None:
    config = Settings(KAFKA_BOOTSTRAP_SERVERS="k:9092").kafka_client_config()
    assert config == {"bootstrap.servers": "k:9092"}
    assert java_properties(config) == ""


def test_sasl_ssl_with_a_password_file_and_mtls(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="worker",
        kafka_sasl_password_file=secret,
        kafka_ssl_ca_file=tmp_path / "ca.pem",
        kafka_ssl_cert_file=tmp_path / "c.pem",
        kafka_ssl_key_file=tmp_path / "k.pem",
    )
    config = settings.kafka_client_config()
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert (config["sasl.username"], config["sasl.password"]) == ("worker", "s3cret")
    assert config["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert config["ssl.key.location"] == str(tmp_path / "k.pem")
    assert "s3cret" not in repr(settings)  # a SecretStr or a path, never the password itself


def test_the_password_is_never_in_the_settings_repr() -> None:
    settings = Settings(kafka_sasl_password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_sasl_without_credentials_names_the_settings() -> None:
    with pytest.raises(ConfigurationError, match="OUTBID_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL").kafka_client_config()


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=tmp_path / "c.pem")
    with pytest.raises(ConfigurationError, match="OUTBID_KAFKA_SSL_KEY_FILE"):
        settings.kafka_client_config()


def test_java_properties_carry_the_same_settings_for_the_kafka_cli(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("CERT\nLINE")
    (tmp_path / "k.pem").write_text("KEY")
    properties = java_properties(
        {
            "bootstrap.servers": "k:9093",
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "ingest",
            "sasl.password": 'pa"ss',
            "ssl.ca.location": "/ca.pem",
            "ssl.certificate.location": str(tmp_path / "c.pem"),
            "ssl.key.location": str(tmp_path / "k.pem"),
        }
    )
    lines = dict(line.split("=", 1) for line in properties.splitlines())
    assert lines["security.protocol"] == "SASL_SSL"
    assert lines["sasl.mechanism"] == "SCRAM-SHA-512"
    assert lines["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="ingest" password="pa\\\\"ss";'  # a Properties file escapes the JAAS backslash
    )
    assert (lines["ssl.truststore.type"], lines["ssl.truststore.location"]) == ("PEM", "/ca.pem")
    assert lines["ssl.keystore.certificate.chain"] == "CERT\\nLINE"
    assert "bootstrap.servers" not in lines


def test_each_tool_gets_its_own_config_option_unless_given_one() -> None:
    config = Path("/tmp/x.properties")
    assert with_command_config("kafka-console-producer", ["--topic", "t"], config) == [
        "--producer.config",
        str(config),
        "--topic",
        "t",
    ]
    assert with_command_config("kafka-transactions", ["list"], config)[:2] == [
        "--command-config",
        str(config),
    ]
    mine = ["--consumer.config", "mine.properties"]
    assert with_command_config("kafka-console-consumer.sh", mine, config) == mine
    assert with_command_config("kafka-storage", ["info"], config) == ["info"]


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"), "SASL_PASSWORD"),
        (KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed"), "CA_FILE"),
    ],
)
def test_security_failures_name_the_setting_to_fix(error: KafkaError, setting: str) -> None:
    assert setting in (explain(error) or "")


def test_other_failures_are_not_blamed_on_security() -> None:
    assert explain(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")) is None
