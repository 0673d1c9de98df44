"""Faust's built-in /router and /table views describe Faust tables; the worker runs none, and
their lookups answered 500 (found by tests/e2e/test_http_fuzz.py). They are switched off."""

from __future__ import annotations

from app.faust_app import create_app
from app.settings import Settings


def test_faust_s_table_and_router_views_are_not_served() -> None:
    app = create_app(Settings())
    served = {blueprint for _prefix, blueprint in app.web._enabled_blueprints()}
    assert "faust.web.apps.router:blueprint" not in served
    assert "faust.web.apps.tables.blueprint" not in served
