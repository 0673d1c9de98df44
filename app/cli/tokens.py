"""`outbid tokens`: bearer tokens for the HTTP API (app/auth/tokens.py, docs/security.md).

The file holds sha256 hashes only; `create` prints the token once, on stdout, and nowhere else.
Workers re-read the file when it changes: no restart to add, rotate or revoke a token.
"""

from __future__ import annotations

from pathlib import Path

import click

from app.auth.tokens import Role, TokenStore, add_token, remove_tokens
from app.settings import get_settings

FILE_HELP = "The tokens file (default: OUTBID_HTTP_TOKENS_FILE, else {state dir}/http-tokens.yaml)."


def _file(given: Path | None) -> Path:
    settings = get_settings()
    return given or settings.http_tokens_file or settings.state_dir / "http-tokens.yaml"


@click.group()
def tokens() -> None:
    """Create, list and revoke HTTP bearer tokens."""


@tokens.command()
@click.option("--principal", required=True, help="Who the token speaks for (the bidder/seller id).")
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice([r.value for r in Role]),
    help="bidder, seller or operator (repeat for several).",
)
@click.option("--file", "path", type=click.Path(path_type=Path), help=FILE_HELP)
@click.option("--replace", is_flag=True, help="Revoke the principal's other tokens (rotation).")
def create(principal: str, roles: tuple[str, ...], path: Path | None, replace: bool) -> None:
    """Make a token for PRINCIPAL: its hash goes to the file, the token to stdout, once."""
    target = _file(path)
    token = add_token(target, principal, [Role(r) for r in roles], replace=replace)
    click.echo(token)
    click.echo(
        f"# {principal} ({', '.join(roles)}) added to {target}; the token above is not stored "
        "anywhere: keep it.\n# Workers need OUTBID_HTTP_TOKENS_FILE=" + str(target) + "; use:\n"
        "#   curl -H 'Authorization: Bearer <token>' ...",
        err=True,
    )


@tokens.command(name="list")
@click.option("--file", "path", type=click.Path(path_type=Path), help=FILE_HELP)
def list_tokens(path: Path | None) -> None:
    """The principals and roles in the file (hashes are not shown)."""
    store = TokenStore(_file(path))
    for entry in store.entries():
        click.echo(f"{entry.principal.name}\t{','.join(sorted(entry.principal.roles))}")


@tokens.command()
@click.option("--principal", required=True)
@click.option("--file", "path", type=click.Path(path_type=Path), help=FILE_HELP)
def revoke(principal: str, path: Path | None) -> None:
    """Remove every token of PRINCIPAL (workers stop accepting them within a second or two)."""
    removed = remove_tokens(_file(path), principal)
    click.echo(f"removed {removed} token(s) of {principal}")
