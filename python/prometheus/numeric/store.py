"""Writes encoded vectors into numeric_window_embeddings, a batch at a time.

A batch goes in with one binary COPY into a temporary table (fixed-size rows built by numpy)
and one upsert on the unique key, in the caller's transaction: it commits whole or not at all.
window_spec is built in SQL from the staged window, so Python moves only keys and bytes.
"""

from __future__ import annotations

import json

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.registry import FEATURES, ModelSpec
from prometheus.numeric.windows import PGCOPY_SIGNATURE, PGCOPY_TRAILER

PGCOPY_HEADER = PGCOPY_SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
LOCK_NAMESPACE = 0x4E574500  # "NWE\0": advisory locks of this project

CREATE_STAGING = """
create temporary table if not exists encoded_vectors (
    window_seq bigint not null,
    vector bytea not null
) on commit delete rows
"""

UPSERT = """
insert into {embeddings} as stored (
    entity_type, entity_id, window_spec, as_of_date, model_id, vector, vector_ref, created_at
)
select
    'INSTRUMENT',
    windows.instrument_id,
    jsonb_build_object(
        'window_days', windows.window_days,
        'entity_type', 'INSTRUMENT',
        'features', {features}::jsonb,
        'start_date', windows.start_date,
        'end_date', windows.end_date,
        'last_trade_date', windows.end_date,
        'rows_observed', windows.rows_observed,
        'rows_filled', windows.rows_filled,
        'rows_rejected', windows.rows_rejected,
        'trading_days_after_end', windows.trading_days_after_end,
        'is_stale', windows.is_stale,
        'min_rows', windows.min_rows,
        'lookback_days', windows.lookback_days,
        'encoder', {encoder}::text,
        'dim', {dim}::integer,
        'model_id', {model_id}::text,
        'run_id', windows.run_id
    ),
    windows.as_of_date,
    {model_id},
    encoded.vector,
    null,
    now()
from encoded_vectors as encoded
inner join {windows} as windows
    on windows.run_id = {run_id}
    and windows.window_seq = encoded.window_seq
order by windows.window_seq
on conflict (entity_type, entity_id, as_of_date, model_id) {on_conflict}
"""

REPLACE = """do update set
    window_spec = excluded.window_spec,
    vector = excluded.vector,
    vector_ref = excluded.vector_ref,
    created_at = excluded.created_at"""


def copy_payload(window_seqs: NDArray[np.int64], vectors: NDArray[np.float32]) -> bytes:
    """A complete COPY BINARY stream of (window_seq bigint, vector bytea) rows."""
    count, dim = vectors.shape
    vector_bytes = dim * 4
    rows = np.empty(count, dtype=np.dtype([
        ("field_count", ">i2"), ("seq_length", ">i4"), ("window_seq", ">i8"),
        ("vector_length", ">i4"), ("vector", f"V{vector_bytes}"),
    ]))
    rows["field_count"] = 2
    rows["seq_length"] = 8
    rows["window_seq"] = window_seqs
    rows["vector_length"] = vector_bytes
    rows["vector"] = np.ascontiguousarray(vectors, dtype="<f4").view(f"V{vector_bytes}")[:, 0]
    return PGCOPY_HEADER + rows.tobytes() + PGCOPY_TRAILER


class EmbeddingWriter:
    """Upserts one run's vectors; every call runs inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection, embeddings_relation: str,
                 windows_relation: str, run_id: str, replace: bool = True) -> None:
        """replace=False keeps a vector already stored under the key (--skip-existing)."""
        self._conn = conn
        self._replace = replace
        self._embeddings = sql.SQL(embeddings_relation)
        self._windows = sql.SQL(windows_relation)
        self._run_id = run_id
        conn.execute(CREATE_STAGING)

    def lock_models(self, specs: list[ModelSpec]) -> None:
        """Serialize writers of the same models (sorted: no deadlock between two runs)."""
        for model_id in sorted(spec.model_id for spec in specs):
            self._conn.execute("select pg_advisory_xact_lock(%s, hashtext(%s))",
                               (LOCK_NAMESPACE, model_id))

    def write(self, window_seqs: NDArray[np.int64], vectors: NDArray[np.float32],
              spec: ModelSpec, window_days: int) -> int:
        with self._conn.cursor() as cur:
            with cur.copy("copy encoded_vectors (window_seq, vector) from stdin (format binary)"
                          ) as copy:
                copy.write(copy_payload(window_seqs, vectors))
            cur.execute(sql.SQL(UPSERT).format(
                embeddings=self._embeddings,
                windows=self._windows,
                features=sql.Literal(json.dumps(FEATURES)),
                encoder=sql.Literal(spec.encoder),
                dim=sql.Literal(spec.vector_dim(window_days)),
                model_id=sql.Literal(spec.model_id),
                run_id=sql.Literal(self._run_id),
                on_conflict=sql.SQL(REPLACE if self._replace else "do nothing"),
            ))
            written = cur.rowcount
            cur.execute("truncate encoded_vectors")
        if written != len(window_seqs) and (self._replace or written > len(window_seqs)):
            raise PipelineError(f"model {spec.model_id}: stored {written} of {len(window_seqs)} "
                                "vectors of a batch; the batch was rolled back")
        return written


def _advisory(function: str, shared: bool) -> str:
    return f"select {function}{'_shared' if shared else ''}(%s, hashtext(%s))"


def lock(conn: psycopg.Connection, name: str, shared: bool) -> None:
    """A session-level advisory lock of this project, held until unlock or disconnect."""
    conn.execute(_advisory("pg_advisory_lock", shared), (LOCK_NAMESPACE, name))


def try_lock(conn: psycopg.Connection, name: str, shared: bool) -> bool:
    row = conn.execute(_advisory("pg_try_advisory_lock", shared),
                       (LOCK_NAMESPACE, name)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, name: str, shared: bool) -> None:
    conn.execute(_advisory("pg_advisory_unlock", shared), (LOCK_NAMESPACE, name))
