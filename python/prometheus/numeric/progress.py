"""Progress of the encode+write step: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("prometheus.numeric.progress")
LOG_EVERY_SECONDS = 10.0
BAR_WIDTH = 30


class Progress:
    def __init__(self, run_id: str, total: int) -> None:
        self.run_id = run_id
        self.total = max(total, 0)
        self.started = time.monotonic()
        self.last_log = float("-inf")  # the first batch is always logged
        self.done = 0
        self.tty = sys.stderr.isatty()

    def _rate_and_eta(self) -> tuple[float, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return rate, eta

    def advance(self, count: int) -> None:
        self.done += count
        done = self.done
        rate, eta = self._rate_and_eta()
        if self.tty:
            filled = min(BAR_WIDTH, int(BAR_WIDTH * done / self.total)) if self.total \
                else BAR_WIDTH
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            sys.stderr.write(f"\r[{bar}] {done}/{self.total} vectors {rate:,.0f}/s "
                             f"ETA {eta:,.0f}s ")
            sys.stderr.flush()
        elif time.monotonic() - self.last_log >= LOG_EVERY_SECONDS or done >= self.total:
            self.last_log = time.monotonic()
            log.info("run %s: stored %d of %d vectors (%.0f/s, ETA %.0fs)", self.run_id, done,
                     self.total, rate, eta)

    def finish(self) -> None:
        if self.tty and self.done:
            sys.stderr.write("\n")
            sys.stderr.flush()
