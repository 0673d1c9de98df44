"""`outbid demo`: the whole pipeline on this machine, end to end, in about a minute.

Stack up -> topics applied -> two workers -> a sample auction stream through the real
kafka-console-producer -> highest bids read back from the workers' web views.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from app.auth.tokens import Role, add_token
from app.devstack import stack
from app.devstack import workers as worker_procs
from app.devstack.tools import tool_command
from app.domain import AuctionState, Command, decide, encode_command, evolve
from app.errors import DevStackError
from app.sample import sample_commands
from app.settings import Settings, get_settings
from app.topics import admin, load_topics
from app.topics.spec import COMMANDS


@click.command()
@click.option("--auctions", default=40, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--bids", default=10, show_default=True, type=click.IntRange(1, 1_000), help="Bids per auction."
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 8))
def demo(auctions: int, bids: int, workers: int) -> None:  # noqa: PLR0915 - a script of steps
    """Run the whole pipeline locally and show the highest bids."""
    console = Console()
    settings = get_settings()
    with console.status("starting Kafka and Redis"):
        state = stack.up(settings)
    console.print(f"[green]✓[/] Kafka {state.kafka}, Redis {state.redis}")
    spec = load_topics(settings.topics_file)
    config = stack.admin_config(settings, state)
    client = admin.admin_client(config)
    admin.reconcile(spec, client, config, settings.topic_prefix)
    console.print(f"[green]✓[/] topics match {settings.topics_file.name}")
    with console.status(f"starting {workers} workers (faust -A app worker)"):
        state = worker_procs.ensure(settings, state, workers)
    urls = [w["url"] for w in state.workers]
    console.print(f"[green]✓[/] workers ready: {', '.join(urls)}")

    run = (
        int(time.time()) % 1_000_000
    )  # fresh auction ids each run: earlier runs' auctions still exist
    commands = list(sample_commands(auctions, bids, seed=run, prefix=f"D{run}"))
    lines = "".join(f"{c.auction_id}|{encode_command(c).decode()}\n" for c in commands)
    producer = tool_command(
        "kafka-console-producer",
        [
            "--bootstrap-server",
            state.kafka,
            "--topic",
            settings.topic(COMMANDS),
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
        ],
    )
    with console.status(f"sending {len(commands)} commands with kafka-console-producer"):
        done = subprocess.run(producer, input=lines, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise DevStackError(f"kafka-console-producer failed:\n{done.stderr[-2000:]}")
    console.print(f"[green]✓[/] sent {len(commands)} commands for {auctions} auctions")

    expected = _reference(commands)
    answers: dict[str, dict[str, object]] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("waiting for the projection", total=len(expected))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for i, auction_id in enumerate(expected):
                if auction_id in answers:
                    continue
                status, body = worker_procs.get_json(f"{urls[i % len(urls)]}/auctions/{auction_id}")
                if status == 200 and body.get("seq") == expected[auction_id]:
                    answers[auction_id] = body
                    progress.advance(task)
            if len(answers) == len(expected):
                break
            time.sleep(0.5)
    table = Table(title="Highest bids (read from the workers' web views)")
    for column in ("auction", "status", "highest bid", "bidder", "seq", "answered by"):
        table.add_column(column)
    shown = sorted(answers.values(), key=lambda a: -(a.get("highest_bid") or 0))[:15]  # type: ignore[operator]
    for i, answer in enumerate(shown):
        bid = answer.get("highest_bid")
        table.add_row(
            str(answer["auction_id"]),
            str(answer["status"]),
            f"{int(bid) / 100:.2f} {answer.get('currency')}" if isinstance(bid, int) else "-",
            str(answer.get("highest_bidder") or "-"),
            str(answer["seq"]),
            urls[i % len(urls)],
        )
    console.print(table)
    if len(answers) < len(expected):
        console.print(
            f"[red]only {len(answers)}/{len(expected)} auctions caught up within 120 s[/]"
        )
        sys.exit(1)
    console.print(f"all {len(expected)} auctions match the reference fold of the commands sent.\n")
    console.print("Look around:")
    console.print(
        f"  {urls[-1]}/auctions/{commands[0].auction_id}   an auction (any worker answers for any auction)"
    )
    console.print(
        f"  {urls[0]}/                      the live page (open it, then run the demo again)"
    )
    console.print(f"  {urls[0]}/metrics               Prometheus metrics")
    console.print(f"  {urls[0]}/readyz                partitions this worker owns")
    console.print(
        f"  outbid kafka kafka-console-consumer --bootstrap-server {state.kafka} "
        f"--topic {settings.topic('auction-events')} --from-beginning"
    )
    _show_tokens(console, settings, urls[0])
    console.print("Stop everything with: [bold]outbid dev down[/] (add --wipe to delete the data)")


def _show_tokens(console: Console, settings: Settings, url: str) -> None:
    """Bearer tokens for the POST routes (docs/security.md#http-identity), made fresh each run."""
    path = settings.http_tokens_file or settings.state_dir / "http-tokens.yaml"
    seller = add_token(path, "demo-seller", [Role.SELLER], replace=True)
    bidder = add_token(path, "demo-bidder", [Role.BIDDER], replace=True)
    console.print(f"\nHTTP commands: tokens for demo-seller and demo-bidder are in {path}")
    if settings.http_tokens_file is None:
        console.print(
            "  these workers run on loopback without a tokens file (dev mode: a POST body names "
            f"its bidder); to require tokens: outbid dev down, then OUTBID_HTTP_TOKENS_FILE={path} "
            "outbid demo"
        )
    auction = f"DEMO-{int(time.time())}"
    console.print(
        f'  curl -H \'Authorization: Bearer {seller}\' -d \'{{"auction_id":"{auction}",'
        '"starting_price":100,"min_increment":10,"currency":"EUR",'
        f'"closes_at":"2030-01-01T00:00:00Z"}}\' {url}/auctions'
    )
    console.print(
        f"  curl -H 'Authorization: Bearer {bidder}' "
        f'-d \'{{"amount":150,"currency":"EUR"}}\' {url}/auctions/{auction}/bids'
    )
    console.print("  (new tokens: outbid tokens create --principal NAME --role bidder)")


def _reference(commands: list[Command]) -> dict[str, int]:
    """The seq each auction must reach: the commands folded through the domain, in order."""
    states: dict[str, AuctionState] = {}
    now = datetime.now(UTC)
    for command in commands:
        state = states.get(command.auction_id) or AuctionState.empty(command.auction_id)
        for event in decide(state, command, now):
            state = evolve(state, event)
        states[state.auction_id] = state
    return {aid: s.version for aid, s in states.items()}
