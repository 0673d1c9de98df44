# The two commands of the README's Quick start. Both set everything up first (scripts/setup.sh).
.PHONY: setup demo test lint

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/outbid demo

test: setup
	.venv/bin/python -m pytest -p no:cacheprovider

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
