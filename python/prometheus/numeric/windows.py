"""Streams the staged windows of one run out of PostgreSQL as numpy arrays.

The windows are read with one binary COPY. Every 'ok' window has the same shape (a bigint
and three float8 arrays of window_days elements, never NULL), so each COPY row has a fixed
size and a batch of rows is parsed by numpy in one call: no Python object per value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from prometheus.numeric.errors import PipelineError

PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PGCOPY_HEADER_SIZE = len(PGCOPY_SIGNATURE) + 8  # + flags + header-extension length
PGCOPY_TRAILER = b"\xff\xff"
FLOAT8_OID = 701
ARRAY_HEADER_SIZE = 20  # ndim, has_null, element oid, dim, lower bound
BATCH_BYTES = 32 << 20


@dataclass(frozen=True)
class WindowBatch:
    window_seqs: NDArray[np.int64]
    features: NDArray[np.float64]  # (n, window_days, 3): close, volume, log_return

    def __len__(self) -> int:
        return int(self.window_seqs.shape[0])


def _array_field(window_days: int) -> np.dtype:
    return np.dtype([
        ("length", ">i4"), ("ndim", ">i4"), ("has_null", ">i4"), ("element_oid", ">u4"),
        ("dim", ">i4"), ("lower_bound", ">i4"),
        ("elements", [("length", ">i4"), ("value", ">f8")], (window_days,)),
    ])


def window_row_dtype(window_days: int) -> np.dtype:
    """One COPY BINARY row of (window_seq bigint, closes, volumes, log_returns float8[])."""
    array = _array_field(window_days)
    return np.dtype([
        ("field_count", ">i2"), ("seq_length", ">i4"), ("window_seq", ">i8"),
        ("closes", array), ("volumes", array), ("log_returns", array),
    ])


def _parse_rows(block: bytes | bytearray, window_days: int) -> WindowBatch:
    rows = np.frombuffer(block, dtype=window_row_dtype(window_days))
    array_bytes = ARRAY_HEADER_SIZE + 12 * window_days
    well_formed = (rows["field_count"] == 4) & (rows["seq_length"] == 8)
    for name in ("closes", "volumes", "log_returns"):
        field = rows[name]
        well_formed &= (
            (field["length"] == array_bytes) & (field["ndim"] == 1) & (field["has_null"] == 0)
            & (field["element_oid"] == FLOAT8_OID) & (field["dim"] == window_days)
            & (field["elements"]["length"] == 8).all(axis=1)
        )
    if not well_formed.all():
        raise PipelineError("staged windows are malformed: expected window_days float8 values "
                            "per feature and no NULLs in every 'ok' window")
    features = np.stack(
        [rows[name]["elements"]["value"] for name in ("closes", "volumes", "log_returns")],
        axis=-1,
    ).astype("<f8")
    return WindowBatch(rows["window_seq"].astype(np.int64), features)


def read_windows(
    conn: psycopg.Connection,
    windows_relation: str,
    run_id: str,
    window_days: int,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[WindowBatch]:
    """Yield the run's 'ok' windows in window_seq order, in batches of about batch_bytes."""
    row_size = window_row_dtype(window_days).itemsize
    batch_rows_bytes = max(1, batch_bytes // row_size) * row_size
    statement = sql.SQL(
        "copy (select window_seq, closes, volumes, log_returns from {windows}"
        " where run_id = {run_id} and window_status = 'ok' order by window_seq)"
        " to stdout (format binary)"
    ).format(windows=sql.SQL(windows_relation), run_id=sql.Literal(run_id))
    buffer = bytearray()
    header_seen = False
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            buffer += chunk
            if not header_seen:
                if len(buffer) < PGCOPY_HEADER_SIZE:
                    continue
                if bytes(buffer[: len(PGCOPY_SIGNATURE)]) != PGCOPY_SIGNATURE:
                    raise PipelineError("unexpected COPY BINARY header from the server")
                extension = int.from_bytes(buffer[PGCOPY_HEADER_SIZE - 4:PGCOPY_HEADER_SIZE])
                del buffer[: PGCOPY_HEADER_SIZE + extension]
                header_seen = True
            if len(buffer) >= batch_rows_bytes + len(PGCOPY_TRAILER):
                yield _parse_rows(bytes(buffer[:batch_rows_bytes]), window_days)
                del buffer[:batch_rows_bytes]
    if not header_seen or bytes(buffer[-2:]) != PGCOPY_TRAILER:
        raise PipelineError("the COPY of the staged windows ended early")
    del buffer[-2:]
    if len(buffer) % row_size:
        raise PipelineError("staged windows are malformed: a window has the wrong length")
    if buffer:
        yield _parse_rows(bytes(buffer), window_days)
