"""The COPY BINARY rows the writer sends, built whole by numpy for a batch: no Python object
per value. Rows of numeric_window_embeddings (keys, window_spec text, vector bytes) and of
its pgvector companion numeric_window_vectors (the same vector in pgvector's binary form).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from prometheus.numeric.fingerprints import fingerprints
from prometheus.numeric.registry import FEATURES, ModelSpec
from prometheus.numeric.windows import NO_TRADING_DAYS, PG_EPOCH, StagedWindows

# A COPY BINARY stream: signature, flags and header-extension length, the rows, a trailer.
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
PGCOPY_TRAILER = b"\xff\xff"
ENTITY_TYPE = b"INSTRUMENT"
JSONB_VERSION = 1  # COPY BINARY jsonb: a version byte, then the JSON text
# queries.COPY_COLUMNS; embedding_id, vector_ref and created_at take their defaults.


def _ascii(values: NDArray[np.generic], width: int) -> NDArray[np.uint8]:
    """(n, width) bytes of fixed-width ASCII values."""
    return np.ascontiguousarray(values.astype(f"S{width}")).view(np.uint8).reshape(-1, width)


def _formatted(values: NDArray[np.int64],
               format_unique: Callable[[NDArray[np.int64]], NDArray[np.uint8]]
               ) -> NDArray[np.uint8]:
    """Format each distinct value once (a batch has few), then gather: (n, width) bytes."""
    unique, inverse = np.unique(values, return_inverse=True)
    return format_unique(unique)[inverse.reshape(-1)]


def json_ints(values: NDArray[np.integer], width: int = 11) -> NDArray[np.uint8]:
    """Integers as JSON numbers right-aligned in spaces (JSON allows the whitespace, jsonb
    drops it), so every row's window_spec text has the same length; the NO_TRADING_DAYS
    sentinel becomes null."""
    def render(unique: NDArray[np.int64]) -> NDArray[np.uint8]:
        text = np.where(unique == NO_TRADING_DAYS, b"null", unique.astype(f"S{width}"))
        return _ascii(np.char.rjust(text.astype(f"S{width}"), width), width)
    return _formatted(values.astype(np.int64), render)


def json_dates(days: NDArray[np.integer]) -> NDArray[np.uint8]:
    """COPY BINARY dates (days since 2000-01-01) as quoted ISO dates: (n, 12) bytes."""
    def render(unique: NDArray[np.int64]) -> NDArray[np.uint8]:
        text = np.datetime_as_string(PG_EPOCH + unique.astype("timedelta64[D]"))
        return _ascii(np.char.add(np.char.add('"', text), '"'), 12)
    return _formatted(days.astype(np.int64), render)


def json_bools(values: NDArray[np.integer]) -> NDArray[np.uint8]:
    return _ascii(np.where(values.astype(bool), b" true", b"false"), 5)


def window_specs(batch: StagedWindows, spec: ModelSpec, window_days: int,
                 run_id: str) -> NDArray[np.uint8]:
    """The window_spec JSON text of every window of the batch: (n, length) bytes.

    The keys and values are the README's "Stored vectors" list; constants are rendered by
    json.dumps once, per-window values are fixed-width columns."""
    bounds = batch.bounds
    n = len(batch)
    constants = {
        "window_days": window_days, "entity_type": "INSTRUMENT", "features": FEATURES,
        "encoder": spec.encoder, "dim": spec.vector_dim(window_days),
        "model_id": spec.model_id, "run_id": run_id,
    }
    parts: list[NDArray[np.uint8]] = []

    def text(fragment: str) -> None:
        parts.append(np.broadcast_to(np.frombuffer(fragment.encode(), np.uint8),
                                     (n, len(fragment.encode()))))

    text(json.dumps(constants)[:-1])
    for key, column in (
            ("start_date", json_dates(bounds["start_date"])),
            ("end_date", json_dates(bounds["end_date"])),
            ("last_trade_date", json_dates(bounds["end_date"])),
            ("rows_observed", json_ints(bounds["rows_observed"])),
            ("rows_filled", json_ints(bounds["rows_filled"])),
            ("rows_rejected", json_ints(bounds["rows_rejected"])),
            ("trading_days_after_end", json_ints(bounds["trading_days_after_end"])),
            ("is_stale", json_bools(bounds["is_stale"])),
            ("min_rows", json_ints(bounds["min_rows"])),
            ("lookback_days", json_ints(bounds["lookback_days"]))):
        text(f', "{key}": ')
        parts.append(column)
    text(', "inputs_fingerprint": "')
    parts.append(fingerprints(spec, window_days, batch.rows_hash, batch.previous_close))
    text('"}')
    return np.hstack(parts)


def big_endian(values: NDArray[np.generic] | int, dtype: str, n: int) -> NDArray[np.uint8]:
    """A big-endian integer column (or constant) as (n, size) bytes."""
    column = np.broadcast_to(np.asarray(values, dtype=dtype), (n,))
    return np.ascontiguousarray(column).view(np.uint8).reshape(n, -1)


# The columns of a group of rows whose entity_ids have one byte length: (rows, their
# entity_ids as fixed-width bytes, that length) -> the row's fields as (n, width) bytes.
GroupColumns = Callable[[NDArray[np.intp], NDArray[np.uint8], int], list[NDArray[np.uint8]]]


def _rows_by_entity_length(batch: StagedWindows, columns: GroupColumns) -> memoryview:
    """The COPY BINARY rows (no header) of the whole batch. numpy builds fixed-width rows, so
    rows are grouped by the byte length of their instrument_id (a batch usually has one) and
    each group is built in one go."""
    unique_ranks, rank_index = np.unique(batch.bounds["selection_rank"], return_inverse=True)
    entity_ids = [batch.instrument_ids[int(rank)].encode() for rank in unique_ranks]
    lengths = np.array([len(entity_id) for entity_id in entity_ids])[rank_index]
    chunks: list[NDArray[np.uint8]] = []
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        ids = np.array(entity_ids, dtype=f"S{length}")  # only this group's are read
        chunks.append(np.hstack(columns(rows, _ascii(ids[rank_index[rows]], length),
                                        length)).reshape(-1))
    # One instrument_id length (the usual case): the rows go out without another copy.
    return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)).data


def copy_rows(batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
              window_days: int, run_id: str,
              embedding_ids: NDArray[np.int64] | None = None) -> memoryview:
    """Rows of queries.COPY_COLUMNS, led by embedding_id when embedding_ids are given."""
    specs_text = window_specs(batch, spec, window_days, run_id)
    vector_bytes = np.ascontiguousarray(vectors, dtype="<f4").view(np.uint8)
    vector_bytes = vector_bytes.reshape(len(batch), -1)
    model = spec.model_id.encode()

    def columns(rows: NDArray[np.intp], entity_ids: NDArray[np.uint8],
                length: int) -> list[NDArray[np.uint8]]:
        count = rows.size
        ids = [] if embedding_ids is None else [big_endian(8, ">i4", count),
                                                big_endian(embedding_ids[rows], ">i8", count)]
        return [
            big_endian(6 + (embedding_ids is not None), ">i2", count), *ids,
            big_endian(len(ENTITY_TYPE), ">i4", count), _ascii(np.full(count, ENTITY_TYPE), 10),
            big_endian(length, ">i4", count), entity_ids,
            big_endian(specs_text.shape[1] + 1, ">i4", count),
            big_endian(JSONB_VERSION, "u1", count), specs_text[rows],
            big_endian(4, ">i4", count),
            big_endian(batch.bounds["as_of_date"][rows], ">i4", count),
            big_endian(len(model), ">i4", count), _ascii(np.full(count, model), len(model)),
            big_endian(vector_bytes.shape[1], ">i4", count), vector_bytes[rows],
        ]
    return _rows_by_entity_length(batch, columns)


def pgvector_values(vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Each vector as one COPY BINARY field of pgvector's `vector`, length word included:
    (n, 8 + 4 * dims) bytes. The format: int16 dimensions, int16 unused, then big-endian
    float32 values (the same bits as the little-endian bytea)."""
    count, dims = vectors.shape
    values = np.ascontiguousarray(vectors, dtype=">f4").view(np.uint8).reshape(count, -1)
    return np.hstack([big_endian(4 + values.shape[1], ">i4", count), big_endian(dims, ">i2", count),
                      big_endian(0, ">i2", count), values])


def vector_rows(batch: StagedWindows, vectors: NDArray[np.float32], model_id: str,
                embedding_ids: NDArray[np.int64]) -> memoryview:
    """Rows of queries.VECTOR_COLUMNS: the batch's vectors as pgvector values."""
    values = pgvector_values(vectors)
    model = model_id.encode()

    def columns(rows: NDArray[np.intp], entity_ids: NDArray[np.uint8],
                length: int) -> list[NDArray[np.uint8]]:
        count = rows.size
        return [
            big_endian(5, ">i2", count),
            big_endian(8, ">i4", count), big_endian(embedding_ids[rows], ">i8", count),
            big_endian(len(model), ">i4", count), _ascii(np.full(count, model), len(model)),
            big_endian(length, ">i4", count), entity_ids,
            big_endian(4, ">i4", count), big_endian(batch.bounds["as_of_date"][rows], ">i4", count),
            values[rows],
        ]
    return _rows_by_entity_length(batch, columns)
