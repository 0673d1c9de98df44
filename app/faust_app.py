"""The Faust application: `faust -A app worker` finds `app` here (through app/__init__.py).

Faust hosts the worker process, its services and its web views. It runs no stream agents and
no Faust tables: bid-commands are processed by the engine (app/engine), a confluent-kafka
exactly-once loop that Faust starts as one of its services. A stock Faust agent tops out near
3,000 records/s on this project's reference machine (docs/benchmarks.md); the engine does not
share that ceiling.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.app.base import BootStrategy

from app.engine.service import EngineService
from app.readmodel import ReadModel
from app.settings import Settings, get_settings
from app.web.identity import Gate, IdentityCheck


class WorkerBoot(BootStrategy):
    # No Faust Kafka client at all: its consumer would join the group named after the app id
    # (the engine's group) with another protocol, and the POST views write commands with the
    # same idempotent confluent-kafka producer as every other command writer (app/web/ingest.py).
    enable_kafka = False


class OutbidApp(faust.App):
    BootStrategy = WorkerBoot


def create_app(settings: Settings) -> faust.App:
    app = OutbidApp(
        settings.group_id,
        # Faust reads any setting from the environment under this prefix (default: none, so
        # generic names like WEB_PORT or APP_VERSION would silently change the worker).
        env_prefix="OUTBID_FAUST_",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        autodiscover=False,
        topic_allow_declare=False,  # topics.yaml is the only source of topics (outbid topics apply)
        topic_disable_leader=True,  # no {id}-__assignor-__leader topic
        web_bind=settings.web_bind,
        web_in_thread=False,
        # Faust's /router and /table views describe Faust tables and where their keys live; this
        # worker runs none (the engine owns its tables, GET /auctions/{id} serves them), and
        # their lookups answered 500. Not served at all: an unknown path is a 404.
        web_router_enabled=False,
        web_tables_enabled=False,
    )
    from app.web import auctions, commands, health, live, metrics  # noqa: PLC0415

    service = EngineService(app, settings)
    # app.service() is typed for classes; faust instantiates classes and takes instances as they
    # are (App.on_init_extra_service), and ours needs its settings.
    app.service(cast(Any, service))
    # Tokens or loopback, checked when the worker starts (not at import: `faust ... --help`
    # works anywhere) on the final address (`faust worker --web-bind` overrides OUTBID_WEB_BIND).
    gate = Gate(settings)
    app.service(cast(Any, IdentityCheck(app, settings, gate)))
    read_model = ReadModel(settings) if settings.redis_enabled else None
    router = auctions.register(app, settings, service, read_model, gate)
    commands.register(app, settings, gate, router)
    health.register(app, service)
    metrics.register(app)
    live.register(app, read_model, gate)
    return app


app = create_app(get_settings())
