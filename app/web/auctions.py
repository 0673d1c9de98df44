"""GET /auctions/{auction_id}: the highest-bid projection, answered by the partition's owner.

`table_route` hashes the id's UTF-8 bytes exactly as producers key commands, so any worker
forwards the request to the one that holds the auction (faust issues #187/#514 are about
tables whose key bytes differ from the topic's; ours are the same raw bytes by construction).
"""

from __future__ import annotations

import re
from typing import Any, cast

import aiohttp
import faust
from faust.web import Request, Response, View

from app.domain import decode_view
from app.web.routing import ensure_route_metadata

AUCTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def register(app: faust.App, highest_bids: Any) -> None:
    @app.page("/auctions/{auction_id}")
    class AuctionView(View):
        async def get(self, request: Request, auction_id: str) -> Response:
            if not AUCTION_ID.match(auction_id):
                return self.json(
                    {
                        "error": "malformed auction id: use 1-128 of A-Z a-z 0-9 . _ : @ -, "
                        "starting with a letter or digit"
                    },
                    status=400,
                )
            await ensure_route_metadata(app, highest_bids)
            try:
                routed: Any = self.owner  # table_route's wrapper keeps our keyword arguments
                return cast(Response, await routed(request, auction_id=auction_id))
            except (
                aiohttp.ClientError,
                OSError,
            ) as exc:  # the owner just left; a rebalance follows
                return self.json(
                    {
                        "error": f"the worker owning this auction is unreachable ({exc}); "
                        "retry in a few seconds"
                    },
                    status=503,
                    headers={"Retry-After": "2"},
                )

        @app.table_route(table=highest_bids, match_info="auction_id")  # type: ignore[arg-type]
        async def owner(self, request: Request, auction_id: str) -> Response:
            stored = highest_bids.get(auction_id.encode())
            if stored is None:
                return self.json({"error": f"unknown auction {auction_id!r}"}, status=404)
            return self.json(decode_view(stored).to_json_dict())
