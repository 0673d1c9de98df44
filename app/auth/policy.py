"""Who may send which command: the principal is the bidder of its bids and the seller of the
auctions it opens; an auction is closed by its seller or an operator.

Each rule returns None when the command may go, else a Refusal (403 unless said otherwise).
The body is the client's JSON object, before the command is decoded: a missing bidder_id or
seller_id is filled in from the principal here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.auth.tokens import Principal, Role


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    message: str
    status: int = 403


def _role(principal: Principal, command: str, *roles: Role) -> Refusal | None:
    if any(principal.has(r) for r in roles):
        return None
    needed = " or ".join(str(r) for r in roles)
    return Refusal("wrong_role", f"{command} needs the {needed} role; {principal.name!r} has not")


def may_bid(principal: Principal, body: dict[str, Any]) -> Refusal | None:
    return _in_own_name(principal, body, "PlaceBid", Role.BIDDER, "bidder_id")


def may_open(principal: Principal, body: dict[str, Any]) -> Refusal | None:
    return _in_own_name(principal, body, "OpenAuction", Role.SELLER, "seller_id")


def _in_own_name(
    principal: Principal, body: dict[str, Any], command: str, needed: Role, field: str
) -> Refusal | None:
    """The role, and the body's `field` naming the principal (filled in when omitted)."""
    refused = _role(principal, command, needed)
    if refused:
        return refused
    if body.setdefault(field, principal.name) != principal.name:
        return Refusal(
            "not_your_identity",
            f"{field} must be {principal.name!r}, the token's principal (or omitted)",
        )
    return None


def may_close_any(principal: Principal) -> Refusal | None:
    """Checked before the auction's seller is looked up: bidders never get that far."""
    return _role(principal, "CloseAuction", Role.SELLER, Role.OPERATOR)


def may_close(principal: Principal, seller_id: str | None) -> Refusal | None:
    """`seller_id`: the auction's seller, None for an auction never opened (404)."""
    refused = may_close_any(principal)
    if refused:
        return refused
    if seller_id is None:
        return Refusal("unknown_auction", "unknown auction: it was never opened", status=404)
    if principal.has(Role.OPERATOR) or seller_id == principal.name:
        return None
    return Refusal(
        "not_your_auction",
        f"only the auction's seller or an operator may close it; {principal.name!r} is neither",
    )
