"""A budget of log lines: a flood of bad input must not become a flood of log lines.

A worker fed garbage at 20,000 records/s used to write one warning per dead letter, and each
line (formatted, coloured, written) cost more than deciding a command. Now the first `burst`
lines of each interval are written one by one; the rest are counted and reported in one summary
line, by key, when the interval has passed. Metrics still count every record.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class LogBudget:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        burst: int = 20,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.what = logger, what
        self.burst, self.interval_s, self.clock = burst, interval_s, clock
        self._started = clock()
        self._written = 0
        self._over: Counter[str] = Counter()

    def warning(self, key: str, msg: str, *args: object) -> None:
        """Log `msg % args` if the budget allows, else count it under `key`."""
        self.flush_due()
        if self._written < self.burst:
            self._written += 1
            self.logger.warning(msg, *args)
        else:
            self._over[key] += 1

    def flush_due(self) -> None:
        """Report what was over the budget once its interval has passed (cheap to call often)."""
        now = self.clock()
        if now - self._started < self.interval_s:
            return
        if self._over:
            by_key = ", ".join(f"{key}: {count:,}" for key, count in self._over.most_common())
            self.logger.warning(
                "%s more %s in the last %.0f s were not logged one by one (%s)",
                f"{self._over.total():,}",
                self.what,
                now - self._started,
                by_key,
            )
        self._started, self._written = now, 0
        self._over.clear()
