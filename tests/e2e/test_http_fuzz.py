"""No HTTP input gets a 5xx or hangs: hypothesis against every route two live workers serve.

Every route of app/web (and the paths of Faust's built-in /router and /table views, which the
worker switches off), any method, arbitrary paths, query strings, headers and bodies. The only 503
allowed is a documented one: GET /auctions/{id} while the auction's partition moves between
workers (with Retry-After). Redis is up here; Redis down has its own test below.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devstack import processes
from app.devstack.redis import RedisServer
from app.devstack.workers import get_json
from app.readmodel import channel
from app.settings import Settings
from app.web.commands import BODY_TIMEOUT_S
from app.web.routing import FORWARDED
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIMEOUT_S = 10  # per request: longer is a hung request (no fuzzed request waits past 1 s)
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
    st.none(),
    st.binary(max_size=300),
    command_like,
    json_values.map(lambda v: json.dumps(v).encode()),
)
ids = st.text(min_size=1, max_size=40) | st.sampled_from(["A-1", "U-1", "a.b:c@d", "x" * 129])
# Every route the worker serves, as (path template, its methods); {id} is a fuzzed segment.
ROUTES = [
    ("/auctions/{id}", "GET"),
    ("/auctions", "POST"),
    ("/auctions/{id}/bids", "POST"),
    ("/auctions/{id}/close", "POST"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/metrics", "GET"),
    ("/", "GET"),
    ("/live/snapshot", "GET"),
    ("/live/stream", "GET"),
    ("/router/", "GET"),  # Faust's built-in views: switched off, so a 404
    ("/router/topics", "GET"),
    ("/router/{id}/", "GET"),
    ("/router/{id}/{id}/", "GET"),
    ("/table/", "GET"),
    ("/table/{id}/", "GET"),
    ("/table/{id}/{id}/", "GET"),
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "SEARCH", "TRACE", "BREW"]
URL_SAFE = string.ascii_letters + string.digits + "%&=;+-._~!$'()*,:@/?[]"
query_keys = st.sampled_from(["after", "wait_ms", "source", "params", ""]) | st.text(max_size=10)
query_values = (
    st.sampled_from(["redis", "table", "0", "-5", "1e3", "99999999999999999999", "", "A-1"])
    | st.integers().map(str)
    | st.text(max_size=20)
)
queries = st.one_of(
    st.lists(st.tuples(query_keys, query_values), max_size=4).map(urllib.parse.urlencode),
    st.text(alphabet=URL_SAFE, max_size=30),  # raw: stray %, &&, =, ? as they come
)
# Framing headers (Content-Length, Transfer-Encoding) are the client library's to write: set
# by hand they describe a body other than the one sent, and the server rightly waits for it.
# The forwarding marker is left to test_engine: on a non-owner it is a documented 503.
header_names = st.sampled_from(
    [
        "Content-Type",
        "Content-Encoding",
        "Accept",
        "Accept-Encoding",
        "Origin",
        "Cookie",
        "Authorization",
        "Range",
        "If-None-Match",
        "Connection",
        "Upgrade",
        "X-Forwarded-For",
    ]
) | st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20).filter(
    lambda name: name.lower() not in {"content-length", "transfer-encoding", FORWARDED.lower()}
)
header_values = st.sampled_from(
    ["gzip", "deflate", "br", "identity", "application/json", "text/plain", "*/*", "websocket"]
) | st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], max_size=40)
headers = st.builds(
    lambda named, other: {**other, **named},
    # the headers that change how a body is read, often enough to meet every route
    st.fixed_dictionaries(
        {},
        optional={
            "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x"]),
            "Content-Type": header_values,
        },
    ),
    st.dictionaries(header_names, header_values, max_size=3),
)


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes


def _call(
    method: str,
    url: str,
    body: bytes | None = None,
    extra: dict[str, str] | None = None,
    stream: bool = False,
) -> Answer:
    request = urllib.request.Request(url, data=body, method=method, headers=extra or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            # a server-sent event stream never ends: its status line and headers are the answer
            data = b"" if stream else response.read()
            return Answer(int(response.status), response.headers.get("Retry-After"), data)
    except urllib.error.HTTPError as exc:
        with exc:  # an unclosed error response leaks its socket (a ResourceWarning: an error)
            return Answer(int(exc.code), exc.headers.get("Retry-After"), exc.read())


def _documented(path: str, method: str, answer: Answer) -> bool:
    """A 503 the README lists: the auction's partition moving between workers."""
    return (
        answer.status == 503
        and method in {"GET", "HEAD"}
        and path.startswith("/auctions/")
        and answer.retry_after is not None
        and (method == "HEAD" or b"moving between workers" in answer.body)
    )


def _bodies_are_refused_not_waited_for(url: str) -> None:
    # past 64 KiB: refused after reading that much (not all of it into memory)
    assert _call("POST", f"{url}/auctions", b"{" + b" " * 100_000 + b"}").status == 413
    # compressed: refused unread (415), or by aiohttp's parser (400) when the body came with
    # the headers. This deflate body, sent after them, was never ended by aiohttp 3.14: a hang.
    for encoding, body in [("deflate", b"\xd9\xb1"), ("gzip", b"\x00\x00"), ("gzip", b"{}")]:
        head = (
            f"POST /auctions/A-1/bids HTTP/1.1\r\nHost: x\r\nContent-Encoding: {encoding}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        assert _raw(url, [head.encode(), body]).split(b" ")[1] in {b"400", b"415"}, encoding
    # announced but never sent: refused after BODY_TIMEOUT_S, not waited for
    started = time.monotonic()
    head = b"POST /auctions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    assert _raw(url, [head, b"{"]).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < BODY_TIMEOUT_S + 2


def _raw(url: str, parts: list[bytes]) -> bytes:
    """The start of the answer to `parts` sent one after the other on one connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as conn:
        for part in parts:
            conn.sendall(part)
            time.sleep(0.1)  # each part its own segment: the server reads them apart
        return conn.recv(64)


def _no_crash_logged(line: Pipeline) -> None:
    """No traceback in the workers' logs but aiohttp's for a request its HTTP parser refused
    with a 400 (aiohttp logs those at ERROR, e.g. a Content-Encoding it cannot decode)."""
    for spec in line.specs:
        records = re.split(r"\n(?=\[\d{4}-)", spec.log_file.read_text(errors="replace"))
        crashes = [
            record
            for record in records
            if "Traceback" in record and "aiohttp.http_exceptions." not in record
        ]
        assert not crashes, f"{spec.log_file}: {crashes[0]}"
        assert "Unclosed" not in "".join(records), spec.log_file


def test_every_route_any_method_path_query_header_and_body_never_gets_a_5xx(
    pipeline: Pipeline,
) -> None:
    pipeline.start(2)  # two workers: GET /auctions/{id} is forwarded to the owner half the time
    urls = pipeline.urls()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        worker=st.sampled_from(urls),
        route=st.sampled_from(ROUTES) | st.just(("{random}", "GET")),
        method=st.sampled_from(METHODS),
        own_method=st.booleans(),
        auction_id=ids,
        other_id=ids,
        segments=st.lists(st.text(max_size=12), max_size=4),
        query=queries,
        extra=headers,
        body=bodies,
    )
    def one_request(
        worker: str,
        route: tuple[str, str],
        method: str,
        own_method: bool,
        auction_id: str,
        other_id: str,
        segments: list[str],
        query: str,
        extra: dict[str, str],
        body: bytes | None,
    ) -> None:
        template, route_method = route
        method = route_method if own_method else method
        if template == "{random}":
            path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
        else:
            quoted = [urllib.parse.quote(i, safe="") for i in (auction_id, other_id)]
            path = template.replace("{id}", quoted[0], 1).replace("{id}", quoted[1], 1)
        if (
            "after=" in query
        ):  # read-your-writes waits up to wait_ms (5 s by default): keep it short
            query += "&wait_ms=300"
        url = f"{worker}{path}?{query}" if query else f"{worker}{path}"
        answer = _call(method, url, body, extra, stream="stream" in path)
        assert answer.status < 500 or _documented(path, method, answer), (
            f"{method} {url} {extra} {body and body[:80]!r} -> {answer.status} {answer.body[:300]!r}"
        )

    one_request()
    _bodies_are_refused_not_waited_for(urls[0])
    for index in pipeline.pids:
        assert processes.alive(pipeline.pids[index])
    for url in urls:
        assert get_json(f"{url}/healthz")[0] == 200
        for builtin in ("/router/", "/router/topics", "/table/", "/table/auctions/"):
            assert _call("GET", f"{url}{builtin}").status == 404, builtin  # not served at all
    _no_crash_logged(pipeline)


def test_redis_down_is_a_503_with_retry_after_and_the_tables_still_answer(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", port=processes.free_port())
    server.start()
    try:
        pipeline.env["REDIS_URL"] = server.url
        pipeline.start(1)
        url = pipeline.urls()[0]
        server.stop()
        for path in ("/auctions/A-1?source=redis", "/live/snapshot", "/live/stream"):
            answer = _call("GET", f"{url}{path}", stream=True)
            assert (answer.status, answer.retry_after) == (503, "1"), path
        # the owner's table does not need Redis: A-1 was never opened
        assert _call("GET", f"{url}/auctions/A-1").status == 404
        assert _call("GET", f"{url}/readyz").status == 200
    finally:
        server.stop()
    _no_crash_logged(pipeline)


def test_a_head_request_on_the_live_stream_answers_without_subscribing_to_redis(
    pipeline: Pipeline,
) -> None:
    pipeline.start(1)
    settings = Settings(REDIS_URL=pipeline.env["REDIS_URL"], topic_prefix=pipeline.prefix)  # type: ignore[call-arg]
    changes = channel(settings.redis_prefix)
    client = redis.Redis.from_url(pipeline.env["REDIS_URL"])
    host, port = pipeline.urls()[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
    try:
        connection.request("HEAD", "/live/stream")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        assert response.headers["Content-Type"].startswith("text/event-stream")
        # A HEAD answered by the GET holds a subscription, writing keepalives to nobody (as
        # long as the client keeps its connection, as a keep-alive client does).
        time.sleep(2)
        assert client.pubsub_numsub(changes) == [(changes.encode(), 0)]
    finally:
        connection.close()
        client.close()
