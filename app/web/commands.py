"""POST /auctions, /auctions/{id}/bids, /auctions/{id}/close: validate, produce, answer 202.

The command is produced to bid-commands keyed by auction id; the answer carries its command_id
and Kafka partition/offset. No routing is needed: Kafka takes it to the owning partition.

Who sends it is the bearer token's principal (app/web/identity.py); what it may send is
app/auth/policy.py: bids in its own name, auctions opened in its own name, and the close of an
auction it sells (an operator closes any). The close needs the auction's seller: the partition's
owner reads it from its `auctions` table, any other worker forwards the request to the owner
(app/web/routing.py).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import faust
import orjson
from aiohttp import web as aioweb
from confluent_kafka import KafkaException
from faust.web import Request, Response, View

from app.auth.policy import Refusal, may_bid, may_close, may_close_any, may_open
from app.auth.tokens import Principal
from app.domain import AuctionState, AuctionStatus, decode_command, encode_command
from app.domain.wire import format_timestamp
from app.errors import InvalidMessage
from app.settings import Settings
from app.topics.spec import COMMANDS
from app.web.auctions import AUCTION_ID, MALFORMED_ID
from app.web.identity import Denied, Gate
from app.web.ingest import AsyncProducer
from app.web.routing import Moving, Router
from tables.auctions import AUCTIONS

MAX_BODY = 64 * 1024
BODY_TIMEOUT_S = 5.0  # a body still arriving after this is refused (408), never waited for
FORWARD_TIMEOUT_S = 15.0  # a close forwarded to the auction's owner (which produces it)


@dataclass(frozen=True, slots=True)
class Ingest:
    """What the POST views share."""

    app: faust.App
    producer: AsyncProducer
    topic: str
    gate: Gate
    router: Router


async def _body(request: Request) -> bytes | tuple[int, dict[str, str]]:
    """The body, or the status and answer that refuse it. At most MAX_BODY + 1 bytes are read
    (faust's read_request_content reads all of it, however large), within BODY_TIMEOUT_S."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in {"", "identity"}:
        # aiohttp's decoders answer 500 (gzip on plain bytes) or never end the body (a deflate
        # stream cut short, aiohttp 3.14): compressed bodies are refused before any is read.
        return 415, {
            "error": f"Content-Encoding {encoding!r} is not accepted: send the JSON uncompressed",
            "reason": "unsupported_encoding",
        }
    content = cast(aioweb.Request, request).content
    body = b""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while len(body) <= MAX_BODY:
                chunk = await content.read(MAX_BODY + 1 - len(body))
                if not chunk:
                    return body
                body += chunk
    except TimeoutError:
        return 408, {
            "error": f"the body did not arrive within {BODY_TIMEOUT_S:g} s",
            "reason": "body_timeout",
        }
    except aioweb.RequestPayloadError as exc:  # e.g. broken chunked framing
        return 400, {"error": f"the body cannot be read: {exc}", "reason": "unreadable_body"}
    return 413, {"error": f"body larger than {MAX_BODY} bytes", "reason": "too_large"}


def _refuse(view: View, refused: Refusal | Denied) -> Response:
    if isinstance(refused, Denied):
        return view.json(refused.body, status=refused.status, headers=refused.headers)
    return view.json({"error": refused.message, "reason": refused.reason}, status=refused.status)


def _seller(router: Router, partition: int, auction_id: str) -> str | None:
    """The seller of an opened auction, from this worker's committed `auctions` table."""
    tables = router.serving(partition)
    stored = tables.read(AUCTIONS, auction_id.encode()) if tables is not None else None
    if stored is None:
        return None
    state: AuctionState = AUCTIONS.decode(stored)
    return None if state.status is AuctionStatus.NONE else state.seller_id


async def _authorize(
    view: View,
    request: Request,
    ingest: Ingest,
    who: Principal,
    command_type: str,
    fields: dict[str, object],
    body: bytes,
) -> Response | None:
    """None when `who` may send the command (bidder_id / seller_id filled in), else the answer."""
    if command_type == "PlaceBid":
        refused = may_bid(who, fields)
    elif command_type == "OpenAuction":
        refused = may_open(who, fields)
    else:
        auction_id = str(fields["auction_id"])
        if not AUCTION_ID.match(auction_id):
            return view.json({"error": MALFORMED_ID, "reason": "invalid_id"}, status=400)
        partition = ingest.router.partition(auction_id)
        if ingest.router.serving(partition) is None:
            try:  # the owner checks the seller, produces the command and answers
                return await ingest.router.forward(
                    view, request, partition, FORWARD_TIMEOUT_S, body
                )
            except Moving:
                return view.json(
                    {
                        "error": f"the partition of {auction_id!r} ({partition}) is moving "
                        "between workers; retry in a moment (with the same command_id)",
                        "reason": "moving",
                    },
                    status=503,
                    headers={"Retry-After": "1"},
                )
        refused = may_close(who, _seller(ingest.router, partition, auction_id))
    return None if refused is None else _refuse(view, refused)


async def _submit(  # noqa: PLR0911, PLR0912 - one early answer per way a request can be wrong
    view: View,
    request: Request,
    ingest: Ingest,
    command_type: str,
    auction_id: str | None = None,
) -> Response:
    who = ingest.gate.principal(request, ingest.app.conf.web_bind)
    if isinstance(who, Denied):
        return _refuse(view, who)
    if isinstance(who, Principal) and command_type == "CloseAuction":
        refused = may_close_any(who)  # a bidder learns nothing about the auction
        if refused is not None:
            return _refuse(view, refused)
    body = await _body(request)
    if isinstance(body, tuple):
        status, refusal = body
        return view.json(refusal, status=status)
    try:
        fields = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return view.json(
            {"error": f"body is not valid JSON: {exc}", "reason": "malformed_json"}, status=400
        )
    if not isinstance(fields, dict):
        return view.json(
            {"error": "body must be a JSON object", "reason": "not_an_object"}, status=400
        )
    if auction_id is not None:
        if fields.get("auction_id", auction_id) != auction_id:
            return view.json(
                {
                    "error": "auction_id in the body differs from the one in the URL",
                    "reason": "invalid_id",
                },
                status=400,
            )
        fields["auction_id"] = auction_id
    if isinstance(who, Principal):
        answered = await _authorize(view, request, ingest, who, command_type, fields, body)
        if answered is not None:
            return answered
    fields["type"] = command_type
    fields.setdefault("command_id", str(uuid.uuid4()))
    fields.setdefault("issued_at", format_timestamp(datetime.now(UTC)))
    try:
        command = decode_command(orjson.dumps(fields))
    except InvalidMessage as exc:
        return view.json(
            {"error": exc.message, "reason": str(exc.reason), "field": exc.field}, status=400
        )
    except TypeError as exc:  # orjson cannot encode it (e.g. integers beyond 64 bits)
        return view.json(
            {"error": f"body cannot be encoded: {exc}", "reason": "wrong_type"}, status=400
        )
    try:
        written = await ingest.producer.send(
            ingest.topic, command.auction_id.encode(), encode_command(command)
        )
    except KafkaException as exc:
        return view.json(
            {
                "error": f"Kafka did not take the command ({exc.args[0]}); retry with the same "
                "command_id (retries are idempotent)"
            },
            status=503,
            headers={"Retry-After": "1"},
        )
    return view.json(
        {
            "command_id": command.command_id,
            "auction_id": command.auction_id,
            "partition": written.partition(),
            "token": command.command_id,  # GET /auctions/{id}?after=TOKEN waits until it is applied
            "read": f"/auctions/{command.auction_id}?after={command.command_id}",
            "offset": written.offset(),
        },
        status=202,
    )


def register(app: faust.App, settings: Settings, gate: Gate, router: Router) -> None:
    producer = AsyncProducer(settings.kafka_client_config())
    ingest = Ingest(app, producer, settings.topic(COMMANDS), gate, router)

    @app.page("/auctions")
    class OpenAuctionView(View):
        async def post(self, request: Request) -> Response:
            return await _submit(self, request, ingest, "OpenAuction")

    @app.page("/auctions/{auction_id}/bids")
    class PlaceBidView(View):
        async def post(self, request: Request, auction_id: str) -> Response:
            return await _submit(self, request, ingest, "PlaceBid", auction_id)

    @app.page("/auctions/{auction_id}/close")
    class CloseAuctionView(View):
        async def post(self, request: Request, auction_id: str) -> Response:
            return await _submit(self, request, ingest, "CloseAuction", auction_id)
