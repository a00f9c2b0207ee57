"""Runs an iterator in a background thread, a bounded number of items ahead.

The backfill reads and encodes the next batch while the current one is written: the
server's COPY into the table and the reader's queries and numpy work overlap on separate
cores (psycopg and numpy release the GIL while they wait or crunch). At most `depth` items
wait in the queue, so memory stays bounded by the batch size, not the run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class Failure:
    """An exception a background thread hands to the thread that reads its results."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield items' values in order, produced by a daemon thread at most depth ahead; an
    exception in the producer is raised here, at the item where it happened."""
    pending: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(Failure(error))

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join(timeout=5)
