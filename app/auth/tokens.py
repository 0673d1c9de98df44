"""The tokens file: bearer tokens, stored as sha256 hashes, mapped to principals with roles.

```yaml
tokens:
  - principal: alice
    roles: [bidder]
    sha256: 9f86d0...   # sha256 of the token; the token itself is never stored
```

Tokens are random (`new_token`, 256 bits), so an unsalted sha256 is enough: nobody can guess a
preimage, and a leaked file gives away no token. The worker re-reads the file when it changes
(checked at most once per `RELOAD_CHECK_S`), so rotating a token is editing the file: add the
new entry, hand the token out, delete the old entry. A file that does not parse on reload is
logged and ignored (the previous entries stay), never half-applied.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from app.errors import ConfigurationError

log = logging.getLogger(__name__)
RELOAD_CHECK_S = 1.0
TOKEN_PREFIX = "obt_"  # noqa: S105 - not a secret: makes a leaked token recognisable to secret scanners and to people
PRINCIPAL_PATTERN = "1-128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"


class Role(StrEnum):
    BIDDER = "bidder"  # places bids in their own name
    SELLER = "seller"  # opens auctions in their own name, closes their own auctions
    OPERATOR = "operator"  # closes any auction


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class Entry:
    principal: Principal
    digest: bytes  # sha256 of the token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def parse(text: str, source: Path | str = "tokens file") -> list[Entry]:
    """The entries of a tokens file (YAML, or JSON: YAML reads both); ConfigurationError naming
    the entry and the fix when one is wrong. Messages never quote a hash."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML/JSON ({exc})") from exc
    if document is None:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("tokens", []), list):
        raise ConfigurationError(f"{source}: expected a mapping with a `tokens:` list")
    entries = []
    for i, raw in enumerate(document.get("tokens") or []):
        where = f"{source}: tokens[{i}]"
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{where}: expected a mapping (principal, roles, sha256)")
        entries.append(_entry(raw, where))
    return entries


def _entry(raw: dict[str, Any], where: str) -> Entry:
    name, roles, hexdigest = raw.get("principal"), raw.get("roles"), raw.get("sha256")
    if not _valid_name(name):
        raise ConfigurationError(f"{where}: principal must be {PRINCIPAL_PATTERN}")
    if not isinstance(roles, list) or not roles:
        raise ConfigurationError(
            f"{where}: roles must be a non-empty list of bidder, seller, operator"
        )
    try:
        parsed = frozenset(Role(r) for r in roles)
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}: unknown role ({exc}); use bidder, seller, operator"
        ) from exc
    try:
        raw_digest = bytes.fromhex(hexdigest) if isinstance(hexdigest, str) else b""
    except ValueError:
        raw_digest = b""
    if len(raw_digest) != hashlib.sha256().digest_size:
        raise ConfigurationError(
            f"{where}: sha256 must be the 64 hex digits of the token's sha256 "
            "(`outbid tokens create` writes it)"
        )
    return Entry(Principal(str(name), parsed), raw_digest)


class TokenStore:
    """The entries of a tokens file, re-read when the file changes. Thread-safe."""

    def __init__(self, path: Path, *, clock: Any = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._entries = parse(self._read(), path)  # a bad file at start-up stops the worker
        self._checked_at = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the tokens file {self.path} (OUTBID_HTTP_TOKENS_FILE): {exc}; "
                "create it with `outbid tokens create`"
            ) from exc

    def reload_if_changed(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._checked_at < RELOAD_CHECK_S:
                return
            self._checked_at = now
            stamp = self._stat()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._entries = parse(self._read(), self.path)
            except ConfigurationError as exc:
                log.error(  # noqa: TRY400 - the message is the whole story, no traceback
                    "tokens file not reloaded, the previous tokens stay in force: %s", exc
                )
                return
            log.info("tokens file %s reloaded: %d token(s)", self.path, len(self._entries))

    def authenticate(self, token: str) -> Principal | None:
        """The principal of `token`, or None. Every entry is compared, in constant time."""
        self.reload_if_changed()
        presented = digest(token)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found

    def entries(self) -> list[Entry]:
        self.reload_if_changed()
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def add_token(path: Path, principal: str, roles: list[Role], *, replace: bool = False) -> str:
    """Create a token for `principal`, write its hash to `path` (created if missing; with
    `replace`, the principal's other tokens are removed), and return the token: the only time
    it exists in clear. The file is replaced atomically, so a worker never reads half of it."""
    if not _valid_name(principal):
        raise ConfigurationError(f"principal must be {PRINCIPAL_PATTERN}")
    text = path.read_text() if path.exists() else ""
    parse(text, path)  # refuse to rewrite a file we do not understand
    document = yaml.safe_load(text) or {"tokens": []}
    kept = [
        e for e in document.get("tokens") or [] if not (replace and e.get("principal") == principal)
    ]
    token = new_token()
    kept.append(
        {"principal": principal, "roles": [str(r) for r in roles], "sha256": digest(token).hex()}
    )
    document["tokens"] = kept
    write_atomically(path, yaml.safe_dump(document, sort_keys=False))
    return token


def remove_tokens(path: Path, principal: str) -> int:
    """Remove every token of `principal`; how many were removed."""
    text = path.read_text()
    parse(text, path)
    document = yaml.safe_load(text) or {"tokens": []}
    before = document.get("tokens") or []
    document["tokens"] = [e for e in before if e.get("principal") != principal]
    write_atomically(path, yaml.safe_dump(document, sort_keys=False))
    return len(before) - len(document["tokens"])


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o600)  # hashes only, but nobody else needs to read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
