"""The engine as a service of the Faust worker: `faust -A app worker` starts it next to the web
server and stops it (the open transaction commits) when the worker stops.

confluent-kafka's calls block, so the loop runs in its own thread; the web views read the
committed tables from the event loop's thread. If the loop fails (fenced, Kafka refused the
transaction, a bug), the worker crashes and exits non-zero, as a supervisor expects: a worker
that silently stopped processing would be worse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from pathlib import Path
from typing import Any

import faust
from mode import Service

from app.engine.loop import Engine
from app.settings import Settings

log = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0


class EngineService(Service):
    """Holds the engine once the worker's settings (web port, data dir) are final."""

    def __init__(self, app: faust.App, settings: Settings, **kwargs: Any) -> None:
        self.app = app
        self.settings = settings
        self.engine: Engine | None = None
        self._thread: threading.Thread | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        conf: Any = self.app.conf
        url = str(conf.canonical_url).rstrip("/")
        instance = self.settings.worker_instance(int(conf.web_port))
        tabledir = Path(conf.tabledir)
        loop = asyncio.get_running_loop()
        self.engine = engine = await loop.run_in_executor(
            None, lambda: Engine(self.settings, instance=instance, url=url, tabledir=tabledir)
        )
        frozen = freeze_startup_objects()
        log.info("froze %d start-up objects out of the garbage collector's full passes", frozen)
        self._thread = threading.Thread(
            target=self._run, args=(engine, loop), name="outbid-engine", daemon=True
        )
        self._thread.start()
        log.info("engine started: instance %s, web %s, tables in %s", instance, url, tabledir)

    def _run(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        try:
            engine.run()
        except BaseException as exc:
            log.exception("the engine stopped: the worker exits")
            asyncio.run_coroutine_threadsafe(self.app.crash(exc), loop)

    async def on_stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, START_TIMEOUT_S)


def freeze_startup_objects() -> int:
    """Moves every object alive now (Faust, the libraries, the settings) to the garbage
    collector's permanent generation, and returns how many there are.

    They live as long as the process, yet each full (generation 2) collection walked them all,
    stopping the engine's thread for about as long as a loop turn under a steady load; frozen,
    a full collection walks only what was made since (docs/benchmarks.md, "Levers tried").
    """
    gc.collect()  # garbage now is not frozen with the rest
    gc.freeze()
    return gc.get_freeze_count()
