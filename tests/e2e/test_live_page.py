"""The live page in a real browser: a bid placed through the API appears in the DOM."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from tests.conftest import REPO
from tests.e2e.browser import Browser
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"


def _post(url: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback test URL
        return int(response.status)


def test_live_page_shows_a_new_highest_bid_within_seconds(pipeline: Pipeline) -> None:
    pipeline.start(1)
    url = pipeline.urls()[0]
    assert (
        _post(
            f"{url}/auctions",
            {
                "auction_id": "LIVE-1",
                "seller_id": "s",
                "starting_price": 1000,
                "min_increment": 100,
                "currency": "EUR",
                "closes_at": "2030-01-01T00:00:00Z",
            },
        )
        == 202
    )

    async def scenario() -> str:
        async with Browser() as browser:
            await browser.navigate(url + "/")
            deadline = time.monotonic() + 20
            while await browser.evaluate("document.getElementById('status').textContent") != "live":
                assert time.monotonic() < deadline, "the page never connected to /live/stream"
                await asyncio.sleep(0.2)
            for amount in (1500, 2700):
                assert (
                    _post(
                        f"{url}/auctions/LIVE-1/bids",
                        {"bidder_id": f"bidder-{amount}", "amount": amount, "currency": "EUR"},
                    )
                    == 202
                )
            cell = "document.querySelector('#auction-LIVE-1 .bid')?.textContent"
            deadline = time.monotonic() + 20
            text = None
            while time.monotonic() < deadline:
                text = await browser.evaluate(cell)
                if text == "27.00 EUR":
                    break
                await asyncio.sleep(0.2)
            await browser.screenshot(ARTIFACTS / "live-page.png")
            bidder = await browser.evaluate(
                "document.querySelector('#auction-LIVE-1 .bidder')?.textContent"
            )
            assert bidder == "bidder-2700"
            return str(text)

    assert asyncio.run(scenario()) == "27.00 EUR"
