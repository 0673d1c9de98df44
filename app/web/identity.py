"""Who is asking: the bearer token of a request, its principal, and its rate limit.

`Gate.principal` answers a request with its Principal or the refusal to send instead: 401 (no
or unknown token, with `WWW-Authenticate: Bearer`), 429 (past the principal's token bucket,
with `Retry-After`). What the principal may do with the command is app/auth/policy.py.

Without a tokens file (OUTBID_HTTP_TOKENS_FILE) the POST routes take identities from the body
("dev mode"), and only while the web server binds a loopback address: there, the dev stack's
Kafka takes the same commands from any local process with no credentials at all, so a token
would protect nothing. Bound anywhere else, the worker refuses to start without a tokens file,
and a request that reaches it anyway is refused. Tokens are never logged.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.web import Request
from mode import Service

from app.auth.ratelimit import RateLimiter, retry_after
from app.auth.tokens import Principal, TokenStore
from app.errors import ConfigurationError
from app.settings import Settings

log = logging.getLogger(__name__)
# RFC 6750 b64token; anything else after "Bearer " is not a token we could have issued.
BEARER = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]{1,512}=*) *$")
CHALLENGE = 'Bearer realm="outbid"'
HOW_TO = (
    "send `Authorization: Bearer <token>`; tokens are made with "
    "`outbid tokens create --principal NAME --role bidder|seller|operator`"
)


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True, slots=True)
class Denied:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DevMode:
    """No tokens file, loopback bind: the body names the bidder/seller."""


DEV_MODE = DevMode()


def check_bind(settings: Settings, bind: str) -> None:
    """Refuse to serve commands on a non-loopback address without tokens."""
    if settings.http_tokens_file is None and not is_loopback(bind):
        raise ConfigurationError(
            f"the web server binds {bind!r} (OUTBID_WEB_BIND or --web-bind), not a loopback "
            "address, and OUTBID_HTTP_TOKENS_FILE is not set: anyone who reaches it could bid "
            "in anyone's name. Create a tokens file with `outbid tokens create --file PATH "
            "--principal NAME --role bidder` and set OUTBID_HTTP_TOKENS_FILE=PATH"
        )
    if settings.http_tokens_file is None and settings.http_auth_reads:
        raise ConfigurationError(
            "OUTBID_HTTP_AUTH_READS is true but OUTBID_HTTP_TOKENS_FILE is not set: set both"
        )


class Gate:
    def __init__(self, settings: Settings, store: TokenStore | None = None) -> None:
        path = settings.http_tokens_file
        self.store = store or (TokenStore(path) if path is not None else None)
        self.limiter = RateLimiter(settings.http_rate_per_s, settings.http_burst)
        self.auth_reads = settings.http_auth_reads
        self.settings = settings

    def log_mode(self) -> None:
        if self.store is not None:
            log.info("HTTP identity: %d token(s) from %s", len(self.store), self.store.path)
        else:
            log.warning(
                "HTTP identity: dev mode (no OUTBID_HTTP_TOKENS_FILE): POST bodies name the "
                "bidder and seller; allowed on a loopback bind only"
            )

    def principal(self, request: Request, bind: str) -> Principal | DevMode | Denied:
        """The principal of a command request."""
        if self.store is None:
            if is_loopback(bind):
                return DEV_MODE
            return Denied(
                403,
                {
                    "error": f"commands are refused: this worker binds {bind!r} and has no "
                    "OUTBID_HTTP_TOKENS_FILE",
                    "reason": "tokens_not_configured",
                },
            )
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorized(f"no bearer token: {HOW_TO}", error=None)
        match = BEARER.match(header)
        principal = self.store.authenticate(match.group(1)) if match else None
        if principal is None:
            return _unauthorized(f"the bearer token is not valid: {HOW_TO}", error="invalid_token")
        wait_s = self.limiter.acquire(principal.name)
        if wait_s > 0:
            return Denied(
                429,
                {
                    "error": f"{principal.name!r} is past its rate limit "
                    f"({self.settings.http_rate_per_s:g}/s, burst {self.settings.http_burst}); "
                    "retry after Retry-After seconds",
                    "reason": "rate_limited",
                },
                {"Retry-After": retry_after(wait_s)},
            )
        return principal

    def reader(self, request: Request, bind: str) -> Denied | None:
        """None when a read may go: reads are open unless OUTBID_HTTP_AUTH_READS."""
        if not self.auth_reads:
            return None
        found = self.principal(request, bind)
        return found if isinstance(found, Denied) else None


def _unauthorized(message: str, *, error: str | None) -> Denied:
    challenge = CHALLENGE if error is None else f'{CHALLENGE}, error="{error}"'
    return Denied(
        401, {"error": message, "reason": "unauthorized"}, {"WWW-Authenticate": challenge}
    )


class IdentityCheck(Service):
    """Runs `check_bind` on the final bind address (`faust worker --web-bind` overrides the
    setting): a worker bound beyond loopback without tokens stops before it serves."""

    def __init__(self, app: faust.App, settings: Settings, gate: Gate, **kwargs: Any) -> None:
        self.app, self.settings, self.gate = app, settings, gate
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        check_bind(self.settings, str(self.app.conf.web_bind))
        self.gate.log_mode()
