"""The secured dev cluster (`outbid dev up --secure`): TLS material, SCRAM users, ACLs.

Everything is generated once per state dir under `{root}/`: `tls/` (a CA and one broker
certificate with SAN 127.0.0.1/localhost, made with openssl) and `secrets/` (one password per
principal, files 0600). The CA key never leaves `tls/` and is never printed.
Principals (docs/security.md): `broker` (inter-broker, super user), `admin` (super user: topics,
ACLs), `worker`, `ingest`, `reader` (least privilege, from infra/kafka/acls.yaml).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from app.errors import DevStackError
from app.settings import REPO_ROOT

ACLS_FILE = REPO_ROOT / "infra" / "kafka" / "acls.yaml"
MECHANISM = "SCRAM-SHA-512"
SUPER_USERS = ("broker", "admin")
PRINCIPALS = ("broker", "admin", "worker", "ingest", "reader")
CERT_DAYS = 30
ACL_TIMEOUT_S = 15.0


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevStackError("`outbid dev up --secure` needs openssl (apt-get install openssl)")
    done = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DevStackError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _new_key(name: str, cwd: Path) -> None:
    """A 2048-bit RSA private key in `cwd/name` (PEM)."""
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name, cwd=cwd
    )


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass(frozen=True, slots=True)
class SecureCluster:
    """The security material of one dev cluster, in `root` (created by `ensure`)."""

    root: Path

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        """The broker's key (PKCS#8, unencrypted) and certificate: a Java PEM keystore."""
        return self.tls / "broker.pem"

    def password_file(self, principal: str) -> Path:
        return self.root / "secrets" / f"{principal}.password"

    def password(self, principal: str) -> str:
        return self.password_file(principal).read_text().strip()

    def ensure(self) -> None:
        """Generate what is missing: passwords first (format needs them), then the TLS files."""
        secrets_dir = self.root / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        secrets_dir.chmod(0o700)
        for principal in PRINCIPALS:
            if not self.password_file(principal).exists():
                _write_secret(self.password_file(principal), secrets.token_urlsafe(24))
        if not self.broker_pem.exists():
            self._make_certificates()

    def _make_certificates(self) -> None:
        self.tls.mkdir(parents=True, exist_ok=True)
        self.tls.chmod(0o700)
        days = str(CERT_DAYS)
        _new_key("ca.key", cwd=self.tls)
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            days,
            "-subj",
            "/CN=outbid dev CA",
            "-out",
            "ca.pem",
            cwd=self.tls,
        )
        _new_key("broker.key", cwd=self.tls)
        _openssl(
            "req",
            "-new",
            "-key",
            "broker.key",
            "-subj",
            "/CN=broker",
            "-out",
            "broker.csr",
            cwd=self.tls,
        )
        (self.tls / "broker.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"  # clientAuth: brokers are each other's clients
        )
        _openssl(
            "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", days, "-extfile", "broker.ext", "-out", "broker.crt",
            cwd=self.tls,
        )  # fmt: skip
        key = (self.tls / "broker.key").read_text()
        _write_secret(self.broker_pem, key + (self.tls / "broker.crt").read_text())
        for name in ("ca.key", "broker.key"):
            (self.tls / name).chmod(0o600)

    # --- the broker --------------------------------------------------------------------
    def scram_format_args(self) -> list[str]:
        """`kafka-storage format` arguments creating every principal's SCRAM credential."""
        args = []
        for principal in PRINCIPALS:
            args += [
                "--add-scram",
                f"{MECHANISM}=[name={principal},password={self.password(principal)}]",
            ]
        return args

    def server_properties(self, port: int, controller_port: int) -> dict[str, object]:
        """SASL_SSL for clients and between brokers; the controller quorum over SSL with client
        certificates (SCRAM cannot authenticate the controller listener: its users live in the
        metadata the controllers serve)."""
        broker_jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="broker" password="{self.password("broker")}";'
        )
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": broker_jaas,
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": self.broker_pem,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.ca_file,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller listener's principal is the certificate's subject.
            "super.users": ";".join([*(f"User:{u}" for u in SUPER_USERS), "User:CN=broker"]),
            "allow.everyone.if.no.acl.found": "false",
        }

    # --- clients -----------------------------------------------------------------------
    def env(self, principal: str) -> dict[str, str]:
        """The OUTBID_KAFKA_* variables that make an outbid client this principal."""
        return {
            "OUTBID_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "OUTBID_KAFKA_SASL_MECHANISM": MECHANISM,
            "OUTBID_KAFKA_SASL_USERNAME": principal,
            "OUTBID_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(principal)),
            "OUTBID_KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def client_config(self, bootstrap: str, principal: str = "admin") -> dict[str, Any]:
        return {
            "bootstrap.servers": bootstrap,
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": MECHANISM,
            "sasl.username": principal,
            "sasl.password": self.password(principal),
            "ssl.ca.location": str(self.ca_file),
        }


# --- ACLs (infra/kafka/acls.yaml) -------------------------------------------------------
RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}


def acl_bindings(prefix: str, path: Path = ACLS_FILE) -> list[AclBinding]:
    """The file's grants as ACL bindings; `{prefix}` in a name is OUTBID_TOPIC_PREFIX."""
    doc = yaml.safe_load(path.read_text())
    return [
        AclBinding(
            RESOURCES[grant["resource"]],
            str(name).format(prefix=prefix),
            ResourcePatternType[str(grant.get("pattern", "literal")).upper()],
            f"User:{principal}",
            "*",
            AclOperation[str(operation).upper()],
            AclPermissionType.ALLOW,
        )
        for principal, grants in doc["principals"].items()
        for grant in grants
        for name in grant["names"]
        for operation in grant["operations"]
    ]


def apply_acls(admin: AdminClient, prefix: str, path: Path = ACLS_FILE) -> int:
    """Create the file's ACLs (idempotent: an existing binding is not an error); how many."""
    bindings = acl_bindings(prefix, path)
    for binding, future in admin.create_acls(bindings, request_timeout=ACL_TIMEOUT_S).items():
        try:
            future.result(timeout=ACL_TIMEOUT_S)
        except Exception as exc:
            raise DevStackError(f"creating ACL {binding} failed: {exc}") from exc
    return len(bindings)
