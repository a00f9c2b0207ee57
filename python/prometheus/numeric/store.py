"""Writes encoded vectors into numeric_window_embeddings, a batch at a time.

A batch's rows are built whole by numpy (keys, window_spec text, vector bytes) as one COPY
BINARY stream. Keys not stored yet, the bulk of any backfill, go straight into the table
with that COPY: the fastest way in, and no lock, so shards write in parallel. Keys already
stored (a re-run) go through a temporary table and one upsert on the unique key, under a
per-model lock that orders concurrent re-runs. Everything runs in the caller's transaction:
a batch commits whole or not at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import errors, sql

from prometheus.numeric import queries
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.fingerprints import fingerprints
from prometheus.numeric.registry import FEATURES, ModelSpec
from prometheus.numeric.windows import (
    NO_TRADING_DAYS,
    PG_EPOCH,
    PGCOPY_SIGNATURE,
    PGCOPY_TRAILER,
    StagedWindows,
)

log = logging.getLogger("prometheus.numeric.store")

PGCOPY_HEADER = PGCOPY_SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
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


def _be(values: NDArray[np.generic] | int, dtype: str, n: int) -> NDArray[np.uint8]:
    """A big-endian integer column (or constant) as (n, size) bytes."""
    column = np.broadcast_to(np.asarray(values, dtype=dtype), (n,))
    return np.ascontiguousarray(column).view(np.uint8).reshape(n, -1)


def copy_rows(batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
              window_days: int, run_id: str) -> memoryview:
    """The COPY BINARY rows (no header) of (COPY_COLUMNS) for the whole batch.

    numpy builds fixed-width rows, so rows are grouped by the byte length of their
    instrument_id (a batch usually has one) and each group is built in one go."""
    specs_text = window_specs(batch, spec, window_days, run_id)
    vector_bytes = np.ascontiguousarray(vectors, dtype="<f4").view(np.uint8)
    vector_bytes = vector_bytes.reshape(len(batch), -1)
    model = spec.model_id.encode()
    ranks = batch.bounds["selection_rank"]
    unique_ranks, rank_index = np.unique(ranks, return_inverse=True)
    entity_ids = [batch.instrument_ids[int(rank)].encode() for rank in unique_ranks]
    lengths = np.array([len(entity_id) for entity_id in entity_ids])[rank_index]
    chunks: list[NDArray[np.uint8]] = []
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        count = rows.size
        ids = np.array(entity_ids, dtype=f"S{length}")  # only this group's are read
        columns = [
            _be(6, ">i2", count),
            _be(len(ENTITY_TYPE), ">i4", count), _ascii(np.full(count, ENTITY_TYPE), 10),
            _be(length, ">i4", count), _ascii(ids[rank_index[rows]], length),
            _be(specs_text.shape[1] + 1, ">i4", count), _be(JSONB_VERSION, "u1", count),
            specs_text[rows],
            _be(4, ">i4", count), _be(batch.bounds["as_of_date"][rows], ">i4", count),
            _be(len(model), ">i4", count), _ascii(np.full(count, model), len(model)),
            _be(vector_bytes.shape[1], ">i4", count), vector_bytes[rows],
        ]
        chunks.append(np.hstack(columns).reshape(-1))
    # One instrument_id length (the usual case): the rows go out without another copy.
    return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)).data


@dataclass
class Written:
    """What one write did: vectors written, of which refreshed because outdated."""

    vectors: int = 0
    refreshed: int = 0


class EmbeddingWriter:
    """Stores one run's vectors; every call runs inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection, embeddings_relation: str, run_id: str,
                 replace: bool = True) -> None:
        """replace=False keeps a vector already stored under the key (--skip-existing)."""
        self._conn = conn
        self._replace = replace
        self._embeddings = sql.SQL(embeddings_relation)
        self._run_id = run_id
        conn.execute(queries.CREATE_ENCODED)

    def write(self, batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
              window_days: int, model_bit: int) -> Written:
        """Store the batch's vectors for one model (bit model_bit of the batch's
        stored_models): new keys, and the stored ones replaced (or, with --skip-existing,
        refreshed when outdated)."""
        stored = ((batch.bounds["stored_models"].astype(np.int64) >> model_bit) & 1) == 1
        new = ~stored
        written = Written()
        if new.any():
            written.vectors += self._insert_new(batch.subset(new) if stored.any() else batch,
                                                vectors[new], spec, window_days)
        if stored.any():
            self._stage_encoded(batch.subset(stored), vectors[stored], spec, window_days)
            if self._replace:
                written.vectors += self._execute(queries.UPSERT, queries.REPLACE)
            else:
                self._execute(queries.VERIFY_UNFINGERPRINTED)
                written.refreshed = self._execute(queries.UPSERT, queries.REFRESH_OUTDATED)
                written.vectors += written.refreshed
            self._conn.execute(queries.CLEAR_ENCODED)
        # With --skip-existing, keys stored and current are left as they are.
        self._check(written.vectors, len(batch), spec, at_most=not self._replace)
        return written

    def _insert_new(self, batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
                    window_days: int) -> int:
        """Keys not stored when the batch was read: one straight COPY. If another run stored
        some of them since, the COPY fails inside a savepoint and they are upserted."""
        try:
            with self._conn.transaction():
                return self._copy_new(batch, vectors, spec, window_days)
        except (errors.UniqueViolation, errors.DeadlockDetected):
            self._stage_encoded(batch, vectors, spec, window_days)
            written = self._execute(queries.UPSERT,
                                    queries.REPLACE if self._replace else queries.KEEP)
            self._conn.execute(queries.CLEAR_ENCODED)
            return written

    @staticmethod
    def _check(written: int, expected: int, spec: ModelSpec, at_most: bool = False) -> None:
        if written > expected or (written < expected and not at_most):
            raise PipelineError(f"model {spec.model_id}: stored {written} of {expected} "
                                "vectors of a batch; the batch was rolled back")

    def _copy_new(self, batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
                  window_days: int) -> int:
        rows = copy_rows(batch, vectors, spec, window_days, self._run_id)
        return self._copy_into(self._embeddings, rows)

    def _copy_into(self, relation: sql.Composable, rows: memoryview) -> int:
        with self._conn.cursor() as cur:
            with cur.copy(sql.SQL(queries.COPY_IN).format(
                    relation=relation, columns=sql.SQL(queries.COPY_COLUMNS))) as copy:
                copy.write(PGCOPY_HEADER)
                copy.write(rows)
                copy.write(PGCOPY_TRAILER)
            return cur.rowcount

    def _stage_encoded(self, batch: StagedWindows, vectors: NDArray[np.float32],
                       spec: ModelSpec, window_days: int) -> None:
        """Keys to upsert go to a temporary table first, one writer per model at a time.
        Callers take the models in sorted order (encode_and_store), so two runs never wait
        on each other's locks in a cycle."""
        self._conn.execute(queries.MODEL_WRITE_LOCK, (queries.LOCK_NAMESPACE, spec.model_id))
        self._copy_into(sql.Identifier("encoded_embeddings"),
                        copy_rows(batch, vectors, spec, window_days, self._run_id))

    def _execute(self, statement: str, on_conflict: str = "") -> int:
        with self._conn.cursor() as cur:
            cur.execute(sql.SQL(statement).format(embeddings=self._embeddings,
                                                  on_conflict=sql.SQL(on_conflict)))
            return cur.rowcount


# autovacuum's default analyze threshold: a table is re-analyzed once this share changed
# (macros/table_statistics.sql applies the same share to the tables dbt writes).
STALE_STATISTICS_SHARE = 0.1


def refresh_statistics(conn: psycopg.Connection, relation: str, rows_written: int) -> bool:
    """ANALYZE relation when rows_written is a large share of it (or it was never analyzed),
    as autovacuum would later. A run's tests read the rows it just wrote: with statistics
    that predate them, PostgreSQL plans the vector checks for a few rows, in one process,
    instead of a parallel scan. Returns whether it analyzed. Only an optimisation: a
    failure (a lock or statement timeout, say) is logged and the run goes on."""
    try:
        row = conn.execute(queries.RELATION_ROWS, (relation,)).fetchone()
        if row is None or row[0] is None or rows_written == 0:
            return False
        estimated_rows = float(row[0])  # -1: never analyzed
        if estimated_rows >= 0 and rows_written < STALE_STATISTICS_SHARE * estimated_rows:
            return False
        # Two ANALYZEs of one table run one after the other (each waits for the other's
        # lock): when another run is at it, its statistics will do (shards end together).
        busy = conn.execute(queries.ANALYZED_BY_ANOTHER_RUN, (relation,)).fetchone()
        if busy and busy[0]:
            log.info("%s is being analyzed by another run; not analyzing it again", relation)
            return False
        conn.execute(sql.SQL(queries.ANALYZE).format(relation=sql.SQL(relation)))
    except psycopg.Error as exc:
        log.warning("could not analyze %s (%s); the run goes on",
                    relation, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        return False
    return True
