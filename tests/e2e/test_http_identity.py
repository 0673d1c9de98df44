"""HTTP identity against two real workers: bearer tokens, roles, who bids and closes, 429.

The workers read a tokens file made with the real `outbid tokens create`; every answer here is
what a client on the network gets. A close is answered by the auction's owner (which reads the
seller from its `auctions` table) whichever worker it is sent to.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devstack import processes
from app.devstack import workers as worker_procs
from app.devstack.workers import get_json
from tests.conftest import Servers, run_outbid
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRINCIPALS = {
    "alice": "bidder",
    "bob": "bidder",
    "sam": "seller",
    "sue": "seller",
    "ops": "operator",
    "spammer": "bidder",
}
TERMS = {"starting_price": 100, "min_increment": 10, "currency": "EUR"}
CLOSES_AT = "2030-01-01T00:00:00Z"


def post(
    url: str, body: dict[str, Any] | bytes, token: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


@pytest.fixture(scope="module")
def secured(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, dict[str, str]]]:
    root = tmp_path_factory.mktemp("identity")
    tokens_file = root / "tokens.yaml"
    prefix = f"t-http-identity-{uuid.uuid4().hex[:6]}."  # unique: a given cluster keeps topics
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "REDIS_URL": servers.redis,
        "OUTBID_TOPIC_PREFIX": prefix,
        "OUTBID_STATE_DIR": str(root / "state"),
        "OUTBID_HTTP_TOKENS_FILE": str(tokens_file),
        "OUTBID_HTTP_RATE_PER_S": "2",
        "OUTBID_HTTP_BURST": "20",
    }
    tokens = {}
    for name, role in PRINCIPALS.items():
        made = run_outbid("tokens", "create", "--principal", name, "--role", role, env=env)
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.strip()
        assert tokens[name] not in tokens_file.read_text()
    applied = run_outbid("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    line = Pipeline(env, prefix, root / "workers")
    try:
        line.start(2)
        yield line, tokens
    finally:
        line.stop()
        for spec in line.specs:
            text = spec.log_file.read_text() if spec.log_file.exists() else ""
            assert not any(token in text for token in tokens.values()), "a token was logged"


def open_auction(url: str, token: str, auction_id: str) -> None:
    body = {"auction_id": auction_id, **TERMS, "closes_at": CLOSES_AT}
    status, answer, _ = post(f"{url}/auctions", body, token)
    assert status == 202, answer
    status, view = get_json(f"{url}{answer['read']}&wait_ms=20000", timeout=30)
    assert (status, view.get("caught_up")) == (200, True), view


def test_a_post_without_a_token_or_with_an_unknown_one_is_401_with_a_bearer_challenge(
    secured: tuple[Pipeline, dict[str, str]],
) -> None:
    line, _tokens = secured
    url = line.urls()[0]
    for token in (None, "obt_not-a-token", "", "a b c"):
        status, answer, headers = post(f"{url}/auctions/X-1/bids", {"amount": 150}, token)
        assert status == 401, answer
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "outbid tokens create" in answer["error"]


def test_a_valid_bid_is_accepted_in_the_principals_name_and_applied(
    secured: tuple[Pipeline, dict[str, str]],
) -> None:
    line, tokens = secured
    first, second = line.urls()
    open_auction(first, tokens["sam"], "ID-1")
    status, bid, _ = post(
        f"{second}/auctions/ID-1/bids", {"amount": 150, "currency": "EUR"}, tokens["alice"]
    )
    assert status == 202, bid
    status, view = get_json(f"{first}{bid['read']}&wait_ms=20000", timeout=30)
    assert (status, view["caught_up"], view["highest_bidder"]) == (200, True, "alice"), view


def test_bidding_in_someone_elses_name_is_403(secured: tuple[Pipeline, dict[str, str]]) -> None:
    line, tokens = secured
    body = {"bidder_id": "bob", "amount": 500, "currency": "EUR"}
    status, answer, _ = post(f"{line.urls()[0]}/auctions/ID-1/bids", body, tokens["alice"])
    assert (status, answer["reason"]) == (403, "not_your_identity"), answer


def test_a_wrong_role_is_403(secured: tuple[Pipeline, dict[str, str]]) -> None:
    line, tokens = secured
    url = line.urls()[0]
    body = {"auction_id": "ID-2", **TERMS, "closes_at": CLOSES_AT}
    status, answer, _ = post(f"{url}/auctions", body, tokens["alice"])  # a bidder opens
    assert (status, answer["reason"]) == (403, "wrong_role"), answer
    status, answer, _ = post(f"{url}/auctions/ID-1/bids", {"amount": 900}, tokens["sam"])
    assert (status, answer["reason"]) == (403, "wrong_role"), answer
    status, answer, _ = post(f"{url}/auctions/ID-1/close", {}, tokens["bob"])
    assert (status, answer["reason"]) == (403, "wrong_role"), answer
    status, answer, _ = post(f"{url}/auctions", {**body, "seller_id": "sue"}, tokens["sam"])
    assert (status, answer["reason"]) == (403, "not_your_identity"), answer


def test_closing_another_sellers_auction_is_403_on_every_worker_and_the_seller_may(
    secured: tuple[Pipeline, dict[str, str]],
) -> None:
    line, tokens = secured
    urls = line.urls()
    open_auction(urls[0], tokens["sam"], "ID-3")
    for url in urls:  # one owns the auction's partition, the other forwards to it
        status, answer, _ = post(f"{url}/auctions/ID-3/close", {}, tokens["sue"])
        assert (status, answer["reason"]) == (403, "not_your_auction"), answer
        status, answer, _ = post(f"{url}/auctions/NEVER-OPENED/close", {}, tokens["ops"])
        assert status == 404, answer
    status, closed, _ = post(f"{urls[1]}/auctions/ID-3/close", {}, tokens["sam"])
    assert status == 202, closed
    status, view = get_json(f"{urls[0]}{closed['read']}&wait_ms=20000", timeout=30)
    assert (status, view["caught_up"], view["status"]) == (200, True, "closed"), view


def test_an_operator_closes_any_auction(secured: tuple[Pipeline, dict[str, str]]) -> None:
    line, tokens = secured
    urls = line.urls()
    open_auction(urls[1], tokens["sue"], "ID-4")
    status, closed, _ = post(f"{urls[0]}/auctions/ID-4/close", {}, tokens["ops"])
    assert status == 202, closed


def test_past_the_rate_limit_a_principal_gets_429_with_retry_after_and_others_do_not(
    secured: tuple[Pipeline, dict[str, str]],
) -> None:
    line, tokens = secured
    url = line.urls()[0]
    answers = [post(f"{url}/auctions/ID-1/bids", b"not json", tokens["spammer"]) for _ in range(40)]
    limited = [a for a in answers if a[0] == 429]
    assert limited, [a[0] for a in answers]
    assert {a[0] for a in answers} == {400, 429}
    assert int(limited[0][2]["Retry-After"]) >= 1
    status, answer, _ = post(f"{url}/auctions/ID-1/bids", b"not json", tokens["bob"])
    assert status == 400, answer
    time.sleep(int(limited[0][2]["Retry-After"]))
    status, answer, _ = post(f"{url}/auctions/ID-1/bids", b"not json", tokens["spammer"])
    assert status == 400, answer


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=80,
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scheme=st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Basic ", "Bearer", "", "Token "]),
    credentials=header_text | st.from_regex(r"obt_[A-Za-z0-9_\-]{0,60}=*", fullmatch=True),
    path=st.sampled_from(["/auctions", "/auctions/ID-1/bids", "/auctions/ID-3/close"]),
)
def test_generated_tokens_and_authorization_headers_never_get_a_5xx(
    secured: tuple[Pipeline, dict[str, str]], scheme: str, credentials: str, path: str
) -> None:
    line, _tokens = secured
    host, port = line.urls()[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Authorization", (scheme + credentials).encode("latin-1"))
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        status = connection.getresponse().status
    finally:
        connection.close()
    assert status in {400, 401, 403, 404, 429}, status


def test_a_worker_bound_beyond_loopback_without_tokens_refuses_to_start(
    secured: tuple[Pipeline, dict[str, str]], tmp_path: Path
) -> None:
    line, _tokens = secured
    env = {k: v for k, v in line.env.items() if k != "OUTBID_HTTP_TOKENS_FILE"}
    for how in ("env", "flag"):
        spec = worker_procs.WorkerSpec(1, processes.free_port(), tmp_path / how)
        command = spec.command()
        if how == "env":
            run_env = {**env, "OUTBID_WEB_BIND": "0.0.0.0"}
        else:
            run_env, command = env, [*command, "--web-bind", "0.0.0.0"]
        child = processes.spawn(command, spec.log_file, env=run_env)
        assert child.wait(timeout=120) != 0
        assert "OUTBID_HTTP_TOKENS_FILE" in spec.log_file.read_text()
