"""`python -m app.cli` == `outbid`."""

from app.cli import main

main()
