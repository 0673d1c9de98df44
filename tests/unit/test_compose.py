"""docker-compose.yml cannot run here (no Docker engine), so check it statically."""

from __future__ import annotations

import re

import yaml

from app.settings import ENV_NAMES
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
OUR_SERVICES = {name: svc for name, svc in COMPOSE["services"].items() if "build" in svc}


def test_compose_has_the_stack() -> None:
    assert {"kafka", "redis", "topics", "prometheus"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert COMPOSE["services"]["topics"]["command"] == ["outbid", "topics", "apply"]
    assert len([n for n in OUR_SERVICES if n.startswith("worker")]) >= 2


def test_our_services_only_use_settings_the_code_reads() -> None:
    known = set(ENV_NAMES.values())
    for name, svc in OUR_SERVICES.items():
        unknown = set(svc.get("environment", {})) - known
        assert not unknown, f"service {name} sets {unknown}, which app/settings.py does not read"


def test_workers_run_the_faust_worker_command_and_expose_their_web_port() -> None:
    prometheus = (REPO / "infra/prometheus/prometheus.yml").read_text()
    for name, svc in OUR_SERVICES.items():
        if not name.startswith("worker"):
            continue
        command = svc["command"]
        assert command[:3] == ["faust", "-A", "app"]
        assert "worker" in command
        port = command[command.index("--web-port") + 1]
        assert command[command.index("--web-host") + 1] == svc["hostname"] == name
        assert any(mapping.endswith(f":{port}") for mapping in svc["ports"])
        assert f"{name}:{port}" in prometheus


def test_kafka_listeners_agree_with_the_bootstrap_address() -> None:
    kafka = COMPOSE["services"]["kafka"]["environment"]
    bootstrap = OUR_SERVICES["worker1"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    host_ports = {p.split(":")[0] for p in COMPOSE["services"]["kafka"]["ports"]}
    assert any(
        re.search(rf"localhost:{p}\b", kafka["KAFKA_ADVERTISED_LISTENERS"]) for p in host_ports
    )


def test_grafana_dashboard_only_queries_metrics_the_workers_export() -> None:
    import json  # noqa: PLC0415

    from prometheus_client import REGISTRY  # noqa: PLC0415

    import app.metrics  # noqa: F401, PLC0415 - registers every metric

    exported = {
        sample_name
        for family in REGISTRY.collect()
        for sample_name in [family.name, f"{family.name}_total", f"{family.name}_bucket"]
    }
    dashboard = json.loads((REPO / "infra/grafana/dashboards/outbid.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(outbid_[a-z_]+)", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"unknown metrics in the dashboard: {queried - exported}"
    grafana = COMPOSE["services"]["grafana"]
    assert any("provisioning" in volume for volume in grafana["volumes"])


def test_the_image_listens_everywhere_but_advertises_its_host_name() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    (cmd,) = (
        line.removeprefix("CMD ") for line in dockerfile.splitlines() if line.startswith("CMD")
    )
    # Without --web-host, faust's web_host is the host name, and the canonical URL a worker puts
    # in its client id (app/engine/kafka.py) is one the other workers can reach; 0.0.0.0 is not.
    assert "--web-host" not in yaml.safe_load(cmd)
    assert re.search(r"^ENV .*\bOUTBID_WEB_BIND=0\.0\.0\.0\b", dockerfile, re.MULTILINE)
