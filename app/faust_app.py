"""The Faust application: `faust -A app worker` finds `app` here (through app/__init__.py).

Everything is wired explicitly in `create_app` (no autodiscovery): topics from topics.yaml,
tables, agents, web views.
"""

from __future__ import annotations

import faust

from app import eos
from app.readmodel import ReadModel
from app.settings import Settings, get_settings
from app.topics import load_topics
from app.topology import declare as declare_topics
from tables import store as table_store


def create_app(settings: Settings) -> faust.App:
    eos.install(settings.disabled_fixes)  # before the App exists: it swaps Faust's classes
    table_store.register()
    spec = load_topics(settings.topics_file)
    app = faust.App(
        settings.faust_app_id,
        # Faust reads any setting from the environment under this prefix (default: none, so
        # generic names like WEB_PORT or APP_VERSION would silently change the worker).
        env_prefix="OUTBID_FAUST_",
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        store=f"{table_store.SCHEME}://",  # faust's rocksdict store + the kill -9 rule
        processing_guarantee=settings.processing_guarantee,
        autodiscover=False,
        topic_allow_declare=False,  # topics.yaml is the only source of topics (outbid topics apply)
        topic_disable_leader=True,  # no {id}-__assignor-__leader topic
        table_standby_replicas=0,  # recovery comes from changelogs (and snapshots), not standbys
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        # Faust's 60 s default: every crashed worker stalls its partitions (and each rebalance
        # that waits for the dead member) for a minute.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 5,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        web_bind=settings.web_bind,
        web_in_thread=False,
    )
    topology = declare_topics(app, settings, spec)

    from agents import bids, highest_bids  # noqa: PLC0415 - agents import faust-heavy modules
    from app.web import auctions, commands, health, live, metrics  # noqa: PLC0415
    from tables import auctions as auctions_table  # noqa: PLC0415
    from tables import bid_rate as bid_rate_table  # noqa: PLC0415
    from tables import highest_bids as highest_bids_table  # noqa: PLC0415
    from tables import snapshots as table_snapshots  # noqa: PLC0415

    table_snapshots.install(app, settings)
    aggregates = auctions_table.declare(app, settings, topology.partitions)
    views = highest_bids_table.declare(app, settings, topology.partitions)
    bids.register(
        app, topology, aggregates, settings.recent_commands, settings.aggregate_snapshot_every
    )
    read_model = ReadModel(settings) if settings.redis_enabled else None
    bid_rate = bid_rate_table.declare(app, settings, topology.partitions) if read_model else None
    highest_bids.register(app, topology, views, read_model, bid_rate)
    auctions.register(app, views, aggregates, read_model)
    commands.register(app, topology)
    health.register(app)
    metrics.register(app)
    metrics.track_rebalances(app)
    live.register(app, read_model)
    return app


app = create_app(get_settings())
