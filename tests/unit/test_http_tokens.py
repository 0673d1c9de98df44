"""The tokens file: hashes only, constant-time lookup, reload on change, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from app.auth.tokens import Role, TokenStore, add_token, digest, parse, remove_tokens
from app.errors import ConfigurationError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_created_token_authenticates_as_its_principal_and_only_its_hash_is_stored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "alice", [Role.BIDDER])
    assert token not in path.read_text()
    assert digest(token).hex() in path.read_text()
    principal = TokenStore(path).authenticate(token)
    assert principal is not None
    assert principal.name == "alice"
    assert principal.roles == frozenset({Role.BIDDER})


def test_an_unknown_or_altered_token_authenticates_as_nobody(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "alice", [Role.BIDDER])
    store = TokenStore(path)
    assert store.authenticate(token[:-1]) is None
    assert store.authenticate("") is None
    assert store.authenticate(token + "x") is None


def test_the_store_reloads_the_file_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    old = add_token(path, "alice", [Role.BIDDER])
    clock = Clock()
    store = TokenStore(path, clock=clock)
    new = add_token(path, "alice", [Role.BIDDER], replace=True)  # rotation
    clock.now += 2
    assert store.authenticate(new) is not None
    assert store.authenticate(old) is None


def test_a_broken_file_on_reload_keeps_the_previous_tokens_and_logs_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "alice", [Role.BIDDER])
    clock = Clock()
    store = TokenStore(path, clock=clock)
    path.write_text("tokens: [{principal: alice, roles: [king], sha256: 00}]\n")
    clock.now += 2
    with caplog.at_level(logging.INFO):
        assert store.authenticate(token) is not None
    assert "not reloaded" in caplog.text
    assert token not in caplog.text
    assert digest(token).hex() not in caplog.text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[1, 2]", "`tokens:` list"),
        ("tokens: [{roles: [bidder], sha256: " + "0" * 64 + "}]", "principal must be"),
        ("tokens: [{principal: a, roles: [], sha256: " + "0" * 64 + "}]", "roles must be"),
        ("tokens: [{principal: a, roles: [king], sha256: " + "0" * 64 + "}]", "unknown role"),
        ("tokens: [{principal: a, roles: [bidder], sha256: abc}]", "64 hex digits"),
        ("tokens: [", "not valid YAML"),
    ],
)
def test_a_malformed_file_is_refused_with_the_entry_and_the_fix(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse(text, "t.yaml")


def test_json_files_are_read_too() -> None:
    entries = parse(
        '{"tokens": [{"principal": "op", "roles": ["operator"], "sha256": "' + "ab" * 32 + '"}]}'
    )
    assert entries[0].principal.has(Role.OPERATOR)


def test_a_missing_file_at_start_up_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="OUTBID_HTTP_TOKENS_FILE"):
        TokenStore(tmp_path / "missing.yaml")


def test_revoke_removes_every_token_of_the_principal_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    add_token(path, "alice", [Role.BIDDER])
    add_token(path, "alice", [Role.BIDDER])
    bob = add_token(path, "bob", [Role.SELLER])
    assert remove_tokens(path, "alice") == 2
    names = [e["principal"] for e in yaml.safe_load(path.read_text())["tokens"]]
    assert names == ["bob"]
    assert TokenStore(path).authenticate(bob) is not None


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    add_token(path, "alice", [Role.BIDDER])
    assert path.stat().st_mode & 0o077 == 0
