"""The COPY BINARY rows the writer sends, built whole by numpy for a batch: one numpy record
per row, each field assigned for the whole batch at once, no Python object per value. Rows of
numeric_window_embeddings (keys, window_spec text, vector bytes) and of its pgvector companion
numeric_window_vectors (the same vector in pgvector's binary form).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from prometheus.numeric.fingerprints import fingerprints
from prometheus.numeric.registry import FEATURES, ModelSpec
from prometheus.numeric.windows import NO_TRADING_DAYS, PG_EPOCH, StagedWindows

# A COPY BINARY stream: signature, flags and header-extension length, the rows, a trailer.
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
PGCOPY_TRAILER = b"\xff\xff"
ENTITY_TYPE = b"INSTRUMENT"
JSONB_VERSION = 1  # COPY BINARY jsonb: a version byte, then the JSON text


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

    end_date = json_dates(bounds["end_date"])
    text(json.dumps(constants)[:-1])
    for key, column in (
            ("start_date", json_dates(bounds["start_date"])),
            ("end_date", end_date),
            ("last_trade_date", end_date),
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


# One field of a COPY BINARY row: its name, its fixed-width type, and its value: a constant
# or one value per row, or for a structured type a value per part.
FieldValue = ArrayLike | dict[str, ArrayLike]
Field = tuple[str, DTypeLike, FieldValue]


def binary_rows(count: int, fields: list[Field]) -> NDArray[np.void]:
    """count COPY BINARY rows (no header), one numpy record each: the field count, then
    each field's length word and value. numpy converts every value to its field's type
    (byte order included) as it assigns it."""
    layout: list[tuple[str, DTypeLike]] = [("field_count", ">i2")]
    for name, dtype, _ in fields:
        layout += [(f"{name}_length", ">i4"), (name, dtype)]
    rows = np.empty(count, dtype=np.dtype(layout))
    rows["field_count"] = len(fields)
    for name, dtype, value in fields:
        rows[f"{name}_length"] = np.dtype(dtype).itemsize
        if not isinstance(value, dict):
            rows[name] = value
            continue
        # np.empty: a part left out would send whatever the memory held.
        if set(value) != set(np.dtype(dtype).names or ()):
            raise ValueError(f"field {name}: values for {sorted(value)}, parts "
                             f"{np.dtype(dtype).names}")
        for part, part_value in value.items():
            rows[name][part] = part_value
    return rows


def pgvector_field(vectors: NDArray[np.float32]) -> Field:
    """The vectors as one field of pgvector's binary `vector`: int16 dimensions, int16
    unused, then the values as big-endian float32 (the same bits as the little-endian
    bytea)."""
    dims = vectors.shape[1]
    layout = np.dtype([("dims", ">i2"), ("unused", ">i2"), ("values", ">f4", (dims,))])
    return ("embedding", layout, {"dims": dims, "unused": 0, "values": vectors})


def _as_void(values: NDArray[np.uint8]) -> NDArray[np.void]:
    """(n, width) bytes as n opaque values of that width."""
    return np.ascontiguousarray(values).view(f"V{values.shape[1]}").reshape(-1)


# The fields of a group of rows whose entity_ids have one byte length: (rows, their
# entity_ids as fixed-width bytes, that length) -> the group's fields.
GroupFields = Callable[[NDArray[np.intp] | slice, NDArray[np.bytes_], int], list[Field]]


def _rows_by_entity_length(batch: StagedWindows, fields: GroupFields) -> memoryview:
    """The COPY BINARY rows (no header) of the whole batch. numpy builds fixed-width rows, so
    rows are grouped by the byte length of their instrument_id (a batch usually has one) and
    each group is built in one go."""
    unique_ranks, rank_index = np.unique(batch.bounds["selection_rank"], return_inverse=True)
    entity_ids = [batch.instrument_ids[int(rank)].encode() for rank in unique_ranks]
    lengths = np.array([len(entity_id) for entity_id in entity_ids], dtype=np.int64)[rank_index]
    chunks: list[NDArray[np.uint8]] = []
    for length in np.unique(lengths).tolist():
        members = np.flatnonzero(lengths == length)
        # The usual case, one length: a slice, so the batch's values are not copied.
        rows: NDArray[np.intp] | slice = slice(None) if members.size == len(batch) else members
        ids = np.array(entity_ids, dtype=f"S{length}")  # only this group's are read
        group = binary_rows(members.size, fields(rows, ids[rank_index[rows]], length))
        chunks.append(group.view(np.uint8))
    return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)).data


def copy_rows(batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
              window_days: int, run_id: str,
              embedding_ids: NDArray[np.int64] | None = None) -> memoryview:
    """Rows of queries.COPY_COLUMNS, led by embedding_id when embedding_ids are given
    (otherwise it takes its default, as vector_ref and created_at do)."""
    specs = _as_void(window_specs(batch, spec, window_days, run_id))
    model = spec.model_id.encode()

    def fields(rows: NDArray[np.intp] | slice, entity_ids: NDArray[np.bytes_],
               length: int) -> list[Field]:
        ids: list[Field] = [] if embedding_ids is None else [
            ("embedding_id", ">i8", embedding_ids[rows])]
        return [
            *ids,
            ("entity_type", f"S{len(ENTITY_TYPE)}", ENTITY_TYPE),
            ("entity_id", f"S{length}", entity_ids),
            ("window_spec", [("version", "u1"), ("text", specs.dtype)],
             {"version": JSONB_VERSION, "text": specs[rows]}),
            ("as_of_date", ">i4", batch.bounds["as_of_date"][rows]),
            ("model_id", f"S{len(model)}", model),
            ("vector", ("<f4", (vectors.shape[1],)), vectors[rows]),
        ]
    return _rows_by_entity_length(batch, fields)


def vector_rows(batch: StagedWindows, vectors: NDArray[np.float32], model_id: str,
                embedding_ids: NDArray[np.int64]) -> memoryview:
    """Rows of queries.VECTOR_COLUMNS: the batch's vectors as pgvector values."""
    model = model_id.encode()

    def fields(rows: NDArray[np.intp] | slice, entity_ids: NDArray[np.bytes_],
               length: int) -> list[Field]:
        return [
            ("embedding_id", ">i8", embedding_ids[rows]),
            ("model_id", f"S{len(model)}", model),
            ("entity_id", f"S{length}", entity_ids),
            ("as_of_date", ">i4", batch.bounds["as_of_date"][rows]),
            pgvector_field(vectors[rows]),
        ]
    return _rows_by_entity_length(batch, fields)
