"""Who may send which command: identities come from the token, never from the body."""

from __future__ import annotations

from typing import Any

from app.auth.policy import may_bid, may_close, may_close_any, may_open
from app.auth.tokens import Principal, Role


def who(name: str, *roles: Role) -> Principal:
    return Principal(name, frozenset(roles))


ALICE = who("alice", Role.BIDDER)
SAM = who("sam", Role.SELLER)
OPS = who("ops", Role.OPERATOR)


def test_a_bid_without_bidder_id_is_made_in_the_principals_name() -> None:
    body: dict[str, Any] = {"amount": 100}
    assert may_bid(ALICE, body) is None
    assert body["bidder_id"] == "alice"


def test_a_bid_in_someone_elses_name_is_403() -> None:
    refused = may_bid(ALICE, {"bidder_id": "bob"})
    assert refused is not None
    assert (refused.status, refused.reason) == (403, "not_your_identity")


def test_a_bid_from_a_seller_or_operator_is_a_wrong_role() -> None:
    for principal in (SAM, OPS):
        refused = may_bid(principal, {})
        assert refused is not None
        assert (refused.status, refused.reason) == (403, "wrong_role")


def test_only_a_seller_opens_and_only_in_their_own_name() -> None:
    body: dict[str, Any] = {}
    assert may_open(SAM, body) is None
    assert body["seller_id"] == "sam"
    refused = may_open(SAM, {"seller_id": "other"})
    assert refused is not None
    assert refused.reason == "not_your_identity"
    refused = may_open(ALICE, {})
    assert refused is not None
    assert refused.reason == "wrong_role"


def test_the_seller_or_an_operator_closes_an_auction_and_nobody_else() -> None:
    assert may_close(SAM, "sam") is None
    assert may_close(OPS, "sam") is None
    other = may_close(who("sue", Role.SELLER), "sam")
    assert other is not None
    assert (other.status, other.reason) == (403, "not_your_auction")
    bidder = may_close_any(ALICE)
    assert bidder is not None
    assert bidder.reason == "wrong_role"


def test_closing_an_auction_never_opened_is_404() -> None:
    refused = may_close(OPS, None)
    assert refused is not None
    assert refused.status == 404


def test_a_principal_with_two_roles_has_both() -> None:
    both = who("dual", Role.BIDDER, Role.SELLER)
    assert may_bid(both, {}) is None
    assert may_open(both, {}) is None
