"""Staging a big run in parts, so the encoder starts on part 0 while dbt stages the rest.

Staging a range is one long statement on one core (a 3-year daily range of 500 instruments
takes 7-11 s) and the encoder used to wait for all of it. Staged in parts of consecutive
selection ranks (numeric_windows' vars stage_part_index and stage_part_count), part 0 is
staged first; a background thread stages parts 1..n-1, one dbt invocation at a time, while
the caller encodes what has landed. Each part costs a dbt invocation (about 0.3-0.5 s of
Python), so only runs with many windows are split.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Iterator

from prometheus.numeric.prefetch import Failure

log = logging.getLogger("prometheus.numeric.staging")

# About this many windows per part: enough to keep the encoder busy while the next part is
# staged, few enough parts that their invocations stay a small share of the run. On the
# bench's 360,478-window range (2 cores): 1 part 34-41 s, 2 parts 30-32 s, 4 parts 30-35 s,
# 6 parts 34-35 s.
WINDOWS_PER_PART = 180_000
MAX_STAGE_PARTS = 8
# Calendar days per as-of date, by frequency (weekdays, weeks, months): an estimate.
DAYS_PER_AS_OF_DATE = {"daily": 7 / 5, "weekly": 7.0, "month-end": 365.25 / 12}


def estimated_windows(start_date: dt.date | None, end_date: dt.date | None, frequency: str,
                      instruments: int) -> int:
    """Windows a request will stage, from its calendar (no query): one date without a range."""
    if start_date is None or end_date is None:
        return instruments
    days = (end_date - start_date).days + 1
    return round(instruments * max(1.0, days / DAYS_PER_AS_OF_DATE[frequency]))


def stage_part_count(windows: int) -> int:
    """Parts of about WINDOWS_PER_PART windows each, at most MAX_STAGE_PARTS."""
    return max(1, min(MAX_STAGE_PARTS, round(windows / WINDOWS_PER_PART)))


_STOPPED = object()
POLL_SECONDS = 0.2


class PartStager:
    """Stages parts 1..part_count-1 in a background thread with stage_part(index), in order,
    one at a time; part 0 is the caller's, staged before. `landed()` yields each part's
    index once it is committed; an error in the thread is raised there. `stop()` (the
    encoder failed) stages no more parts and ends `landed()`; `close()` also waits for the
    part in progress, whose dbt invocation cannot be interrupted safely."""

    def __init__(self, stage_part: Callable[[int], None], part_count: int) -> None:
        self._stage_part = stage_part
        self.part_count = part_count
        self._landed: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stage_rest, name="stage-parts",
                                        daemon=True)
        if part_count > 1:
            self._thread.start()

    def _stage_rest(self) -> None:
        try:
            for index in range(1, self.part_count):
                if self._stop.is_set():
                    return
                self._stage_part(index)
                self._landed.put(index)
        except BaseException as error:  # handed to the reader of landed(), raised there
            self._landed.put(Failure(error))
        finally:
            self._landed.put(_STOPPED)

    def landed(self) -> Iterator[int]:
        yield 0
        while self.part_count > 1 and not self._stop.is_set():
            try:
                item = self._landed.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _STOPPED:
                return
            if isinstance(item, Failure):
                raise item.error
            assert isinstance(item, int)
            yield item

    def stop(self) -> None:
        """Stage no part after the one in progress, and end landed()."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self.part_count > 1:
            self._thread.join(timeout=POLL_SECONDS)
            if self._thread.is_alive():
                log.info("waiting for dbt to finish staging the part in progress")
                self._thread.join()

    def __enter__(self) -> PartStager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
