"""Staging a big range in parts, so encoding starts on part 0 while dbt stages the rest: the
run's one mechanism for overlapping work (what it gains: docs/performance.md).

numeric_windows' vars stage_part_index and stage_part_count cut the run's instruments into
parts of consecutive selection ranks (int_window_requests). The caller stages part 0; a
thread stages parts 1..n-1, one dbt invocation after the other, while the caller encodes the
parts that have landed. Each part costs a dbt invocation, so only big runs are cut.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator

from prometheus.numeric.run_request import BackfillRequest

log = logging.getLogger("prometheus.numeric.stage_parts")

# About this many windows per part: enough to keep the encoder busy while dbt stages the
# next part, few enough parts that their dbt invocations stay a small share of the run.
WINDOWS_PER_PART = 100_000
MAX_STAGE_PARTS = 8
# Calendar days per as-of date, by frequency (weekdays, weeks, months): an estimate.
DAYS_PER_AS_OF_DATE = {"daily": 7 / 5, "weekly": 7.0, "month-end": 365.25 / 12}


def stage_part_count(request: BackfillRequest,
                     market_instruments: Callable[[str], int]) -> int:
    """--stage-parts, else about WINDOWS_PER_PART windows a part, estimated from the request's
    calendar and market_instruments(market_id) (an upper bound of the market's selected
    instruments, asked only for such an estimate). One part for a single date, and for a
    --skip-existing run (mostly stored windows, which are not staged: little to overlap)."""
    if request.stage_parts is not None:
        return request.stage_parts
    if request.start_date is None or request.end_date is None or request.skip_existing:
        return 1
    instruments = len(request.instrument_ids)
    if request.market_id is not None:
        market = max(0, market_instruments(request.market_id) - request.offset)
        instruments += market if request.limit is None else min(request.limit, market)
    instruments = -(-instruments // request.shard[1])
    days = (request.end_date - request.start_date).days + 1
    windows = instruments * max(1.0, days / DAYS_PER_AS_OF_DATE[request.frequency])
    return max(1, min(MAX_STAGE_PARTS, round(windows / WINDOWS_PER_PART)))


_DONE = object()


class PartStager:
    """Stages parts 1..part_count-1 in a thread with stage_part(index), in order. `landed()`
    yields 0 (the caller's part, staged before), then each part's index once dbt has
    committed it (the caller may be parts behind: `landed_count` says how many are in); an
    error in the thread is raised there. Leaving the `with` block stages no more parts and
    waits for the part in progress: its dbt invocation cannot be interrupted safely."""

    def __init__(self, stage_part: Callable[[int], None], part_count: int) -> None:
        self._stage_part = stage_part
        self.part_count = part_count
        self._landed: queue.Queue[object] = queue.Queue()
        self._stopped = threading.Event()
        self.landed_count = 1  # parts committed so far: part 0, then the thread's
        self._thread = threading.Thread(target=self._stage_rest, name="stage-parts",
                                        daemon=True)

    def _stage_rest(self) -> None:
        try:
            for index in range(1, self.part_count):
                if self._stopped.is_set():
                    return
                self._stage_part(index)
                self.landed_count = index + 1
                self._landed.put(index)
        except BaseException as error:  # raised by landed(), in the caller's thread
            self._landed.put(error)
        finally:
            self._landed.put(_DONE)

    def landed(self) -> Iterator[int]:
        yield 0
        if self.part_count == 1:
            return
        while (item := self._landed.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, int)
            yield item

    def __enter__(self) -> PartStager:
        if self.part_count > 1:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=0.5)
            if self._thread.is_alive():
                log.info("waiting for dbt to finish staging the part in progress")
                self._thread.join()
