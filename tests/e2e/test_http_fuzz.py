"""No HTTP input can crash a worker or get a 5xx: hypothesis against a live worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devstack import processes
from app.devstack.workers import get_json
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "auction_id",
        "bidder_id",
        "amount",
        "currency",
        "seller_id",
        "starting_price",
        "min_increment",
        "closes_at",
        "command_id",
        "issued_at",
        "type",
    ]
)
command_like = st.dictionaries(field_names, json_values, max_size=9).map(
    lambda d: json.dumps(d).encode()
)
bodies = st.one_of(
    st.binary(max_size=300), command_like, json_values.map(lambda v: json.dumps(v).encode())
)
ids = st.text(min_size=1, max_size=40)
ALLOWED = {200, 202, 400, 404, 405, 413}  # 200: a fuzzed OpenAuction may create the auction


def _call(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:  # an unclosed error response leaks its socket (a ResourceWarning: an error)
            return int(exc.code)


def test_random_bodies_and_ids_never_crash_a_worker(pipeline: Pipeline) -> None:
    pipeline.start(1)
    url = pipeline.urls()[0]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, auction_id=ids, route=st.sampled_from(["open", "bid", "close", "get"]))
    def one_request(body: bytes, auction_id: str, route: str) -> None:
        quoted = urllib.parse.quote(auction_id, safe="")
        if route == "open":
            status = _call("POST", f"{url}/auctions", body)
        elif route == "bid":
            status = _call("POST", f"{url}/auctions/{quoted}/bids", body)
        elif route == "close":
            status = _call("POST", f"{url}/auctions/{quoted}/close", body)
        else:
            status = _call("GET", f"{url}/auctions/{quoted}")
        assert status in ALLOWED, f"{route} {auction_id!r} {body[:80]!r} -> {status}"

    one_request()
    assert processes.alive(pipeline.pids[1])
    assert get_json(f"{url}/healthz")[0] == 200
    log = pipeline.specs[0].log_file.read_text(errors="replace")
    assert "Traceback" not in log
