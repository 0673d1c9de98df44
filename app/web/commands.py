"""POST /auctions, /auctions/{id}/bids, /auctions/{id}/close: validate, produce, answer 202.

The command is produced to bid-commands keyed by auction id; the answer carries its command_id
and Kafka partition/offset. No routing is needed: Kafka takes it to the owning partition.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import cast

import faust
import orjson
from aiohttp import web as aioweb
from confluent_kafka import KafkaException
from faust.web import Request, Response, View

from app.domain import decode_command, encode_command
from app.domain.wire import format_timestamp
from app.errors import InvalidMessage
from app.settings import Settings
from app.topics.spec import COMMANDS
from app.web.ingest import AsyncProducer

MAX_BODY = 64 * 1024
BODY_TIMEOUT_S = 5.0  # a body still arriving after this is refused (408), never waited for


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


async def _submit(  # noqa: PLR0911 - one early answer per way a body can be wrong
    view: View,
    request: Request,
    producer: AsyncProducer,
    topic: str,
    command_type: str,
    auction_id: str | None = None,
) -> Response:
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
        written = await producer.send(topic, command.auction_id.encode(), encode_command(command))
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


def register(app: faust.App, settings: Settings) -> None:
    topic = settings.topic(COMMANDS)
    producer = AsyncProducer(settings.kafka_bootstrap_servers)

    @app.page("/auctions")
    class OpenAuctionView(View):
        async def post(self, request: Request) -> Response:
            return await _submit(self, request, producer, topic, "OpenAuction")

    @app.page("/auctions/{auction_id}/bids")
    class PlaceBidView(View):
        async def post(self, request: Request, auction_id: str) -> Response:
            return await _submit(self, request, producer, topic, "PlaceBid", auction_id)

    @app.page("/auctions/{auction_id}/close")
    class CloseAuctionView(View):
        async def post(self, request: Request, auction_id: str) -> Response:
            return await _submit(self, request, producer, topic, "CloseAuction", auction_id)
