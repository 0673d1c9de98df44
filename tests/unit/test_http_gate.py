"""The request side of HTTP identity, without a server: 401/429, dev mode, reads, the bind check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.auth.tokens import Principal, Role, add_token
from app.errors import ConfigurationError
from app.settings import Settings
from app.web.identity import DEV_MODE, Denied, Gate, check_bind, is_loopback


def request(authorization: str | None = None) -> Any:
    return SimpleNamespace(
        headers={} if authorization is None else {"Authorization": authorization}
    )


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "tokens.yaml"
    return path, add_token(path, "alice", [Role.BIDDER])


def test_a_valid_bearer_token_is_its_principal_whatever_the_scheme_case(
    tokens: tuple[Path, str],
) -> None:
    path, token = tokens
    gate = Gate(Settings(http_tokens_file=path))
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token} "):
        found = gate.principal(request(header), "0.0.0.0")
        assert isinstance(found, Principal)
        assert found.name == "alice"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic YWxpY2U6cHc=", "Bearer no-such"])
def test_no_or_a_bad_token_is_401_with_a_bearer_challenge(
    tokens: tuple[Path, str], header: str | None
) -> None:
    gate = Gate(Settings(http_tokens_file=tokens[0]))
    found = gate.principal(request(header), "127.0.0.1")
    assert isinstance(found, Denied)
    assert found.status == 401
    assert found.headers["WWW-Authenticate"].startswith('Bearer realm="outbid"')


def test_past_the_burst_the_principal_gets_429_with_retry_after(tokens: tuple[Path, str]) -> None:
    path, token = tokens
    gate = Gate(Settings(http_tokens_file=path, http_burst=2, http_rate_per_s=0.5))
    answers = [gate.principal(request(f"Bearer {token}"), "127.0.0.1") for _ in range(3)]
    assert isinstance(answers[1], Principal)
    assert isinstance(answers[2], Denied)
    assert (answers[2].status, answers[2].headers["Retry-After"]) == (429, "2")


def test_without_a_tokens_file_commands_are_dev_mode_on_loopback_and_refused_elsewhere() -> None:
    gate = Gate(Settings())
    assert gate.principal(request(), "127.0.0.1") is DEV_MODE
    refused = gate.principal(request(), "10.0.0.5")
    assert isinstance(refused, Denied)
    assert refused.status == 403


def test_reads_are_open_unless_the_setting_requires_a_token(tokens: tuple[Path, str]) -> None:
    path, token = tokens
    assert Gate(Settings(http_tokens_file=path)).reader(request(), "127.0.0.1") is None
    strict = Gate(Settings(http_tokens_file=path, http_auth_reads=True))
    denied = strict.reader(request(), "127.0.0.1")
    assert denied is not None
    assert denied.status == 401
    assert strict.reader(request(f"Bearer {token}"), "127.0.0.1") is None


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("127.1.2.3", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("worker1", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_loopback(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_binding_beyond_loopback_without_tokens_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="OUTBID_HTTP_TOKENS_FILE"):
        check_bind(Settings(), "0.0.0.0")
    with pytest.raises(ConfigurationError, match="OUTBID_HTTP_AUTH_READS"):
        check_bind(Settings(http_auth_reads=True), "127.0.0.1")
    check_bind(Settings(), "127.0.0.1")
    check_bind(Settings(http_tokens_file=tmp_path / "t.yaml"), "0.0.0.0")
