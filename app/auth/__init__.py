"""HTTP identity: bearer tokens mapped to principals and roles, the rules of who may send which
command, and the per-principal rate limit. Pure Python: no Faust or aiohttp import (app/web/
identity.py puts it in front of the POST views)."""
