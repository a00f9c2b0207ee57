"""Writes encoded vectors into numeric_window_embeddings, a batch at a time, and the same
vectors into its pgvector companion numeric_window_vectors when the database has it.

A batch's rows are built whole by numpy (copy_rows.py) as one COPY BINARY stream. Keys not
stored yet, the bulk of any backfill, go straight into the table with that COPY: the fastest
way in, and no lock, so shards write in parallel; with the companion, their embedding_ids are
drawn from the table's sequence first, so both COPYs carry them. Keys already stored (a
re-run) go through a temporary table and one upsert on the unique key, under a per-model lock
that orders concurrent re-runs; the companion then follows the rows this run wrote. Everything
runs in the caller's transaction: a batch commits whole or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import errors, sql

from prometheus.numeric import queries
from prometheus.numeric.copy_rows import PGCOPY_HEADER, PGCOPY_TRAILER, copy_rows, vector_rows
from prometheus.numeric.errors import PipelineError, first_line
from prometheus.numeric.packed_rows import read_packed_rows
from prometheus.numeric.registry import ModelSpec
from prometheus.numeric.windows import StagedWindows

log = logging.getLogger("prometheus.numeric.store")
EMBEDDING_ID_ROW = np.dtype([("embedding_id", ">i8")])
PGVECTOR_MAX_DIMS = 16_000  # pgvector's limit: longer vectors stay out of the companion


@dataclass
class Written:
    """What one write did: vectors written, of which refreshed because outdated."""

    vectors: int = 0
    refreshed: int = 0

    def add(self, other: Written) -> None:
        self.vectors += other.vectors
        self.refreshed += other.refreshed


class EmbeddingWriter:
    """Stores one run's vectors; every call runs inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection, embeddings_relation: str, run_id: str,
                 replace: bool = True, vectors_relation: str | None = None) -> None:
        """replace=False keeps a vector already stored under the key (--skip-existing);
        vectors_relation: the pgvector companion to keep in step, if the database has it."""
        self._conn = conn
        self._replace = replace
        self._embeddings = sql.SQL(embeddings_relation)
        self._embeddings_name = embeddings_relation
        self._vectors = None if vectors_relation is None else sql.SQL(vectors_relation)
        self._run_id = run_id
        conn.execute(queries.CREATE_ENCODED)
        if self._vectors is not None:
            conn.execute(sql.SQL(queries.CREATE_ENCODED_VECTORS).format(vectors=self._vectors))

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
            self._follow_upserts(batch.subset(stored), vectors[stored], spec)
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
            self._follow_upserts(batch, vectors, spec)
            return written

    @staticmethod
    def _check(written: int, expected: int, spec: ModelSpec, at_most: bool = False) -> None:
        if written > expected or (written < expected and not at_most):
            raise PipelineError(f"model {spec.model_id}: stored {written} of {expected} "
                                "vectors of a batch; the batch was rolled back")

    def _companion(self, vectors: NDArray[np.float32]) -> sql.Composable | None:
        return self._vectors if vectors.shape[1] <= PGVECTOR_MAX_DIMS else None

    def _copy_new(self, batch: StagedWindows, vectors: NDArray[np.float32], spec: ModelSpec,
                  window_days: int) -> int:
        companion = self._companion(vectors)
        if companion is None:
            rows = copy_rows(batch, vectors, spec, window_days, self._run_id)
            return self._copy_into(self._embeddings, rows)
        ids = self._reserve_ids(len(batch))
        written = self._copy_into(self._embeddings, copy_rows(
            batch, vectors, spec, window_days, self._run_id, ids), with_ids=True)
        self._copy_into(companion, vector_rows(batch, vectors, spec.model_id, ids),
                        columns=queries.VECTOR_COLUMNS)
        return written

    def _reserve_ids(self, count: int) -> NDArray[np.int64]:
        """embedding_ids for count new rows, from the table's own sequence."""
        statement = sql.SQL(queries.RESERVE_IDS).format(
            embeddings_text=sql.Literal(self._embeddings_name), count=sql.Literal(count))
        ids = read_packed_rows(self._conn, statement, EMBEDDING_ID_ROW,
                               "reserved embedding_ids")["embedding_id"]
        return ids.astype(np.int64)

    def _follow_upserts(self, batch: StagedWindows, vectors: NDArray[np.float32],
                        spec: ModelSpec) -> None:
        """The companion takes the vectors of the upserted rows this run wrote (rows an
        upsert kept are left as they are)."""
        companion = self._companion(vectors)
        if companion is None:
            return
        self._copy_into(sql.Identifier("encoded_vectors"),
                        vector_rows(batch, vectors, spec.model_id,
                                    np.zeros(len(batch), np.int64)),
                        columns=queries.VECTOR_COLUMNS)
        self._conn.execute(sql.SQL(queries.FOLLOW_UPSERTS).format(
            vectors=companion, embeddings=self._embeddings), (self._run_id,))
        self._conn.execute(queries.CLEAR_ENCODED_VECTORS)

    def _copy_into(self, relation: sql.Composable, rows: memoryview,
                   columns: str = queries.COPY_COLUMNS, with_ids: bool = False) -> int:
        if with_ids:
            columns = "embedding_id, " + columns
        with self._conn.cursor() as cur:
            with cur.copy(sql.SQL(queries.COPY_IN).format(
                    relation=relation, columns=sql.SQL(columns))) as copy:
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
                    relation, first_line(exc))
        return False
    return True
