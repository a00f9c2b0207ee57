"""The pgvector companion numeric_window_vectors (macros/create_window_vectors.sql): whether
the database has it, and the copy of vectors it lacks.

dbt's on-run-start hook creates the table where pgvector is installed (or creatable) and
PROMETHEUS_PGVECTOR is not 'off'; from then on the writer (store.py) keeps it in step. Vectors
stored before it existed, or by another tool, are copied in here by the next run: read a
batch at a time (packed_rows.py), turned into pgvector's binary form by numpy, and
written with binary COPY, a batch per transaction.
"""

from __future__ import annotations

import logging

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.copy_rows import (
    PGCOPY_HEADER,
    PGCOPY_TRAILER,
    binary_rows,
    pgvector_field,
)
from prometheus.numeric.packed_rows import read_packed_rows

log = logging.getLogger("prometheus.numeric.window_vectors")

FILL_BATCH = 20_000  # vectors per transaction: a bounded amount of memory and of work to redo


def companion(conn: psycopg.Connection, vectors_relation: str) -> str | None:
    """vectors_relation when the database has it, else None (and one log line says so)."""
    row = conn.execute(queries.RELATION_EXISTS, (vectors_relation,)).fetchone()
    if row and row[0]:
        return vectors_relation
    log.info("similarity search is off: no pgvector companion %s in this database "
             "(pgvector not installed, or PROMETHEUS_PGVECTOR=off)", vectors_relation)
    return None


def fill_missing(conn: psycopg.Connection, embeddings_relation: str,
                 vectors_relation: str) -> int:
    """Copy into the companion every stored vector it lacks and can hold; returns how many.
    One run at a time: another run that is filling is left to it."""
    relations = {"embeddings": sql.SQL(embeddings_relation),
                 "vectors": sql.SQL(vectors_relation)}
    missing = conn.execute(sql.SQL(queries.VECTORS_MISSING).format(**relations)).fetchone()
    if not missing or not missing[0]:
        return 0
    locked = conn.execute(queries.FILL_LOCK, (queries.LOCK_NAMESPACE,)).fetchone()
    if not locked or not locked[0]:
        return 0
    try:
        relations["fillable"] = sql.SQL(queries.FILLABLE).format(**relations)
        lengths = [row[0] for row in conn.execute(
            sql.SQL(queries.MISSING_LENGTHS).format(**relations)).fetchall()]
        conn.execute(sql.SQL(queries.CREATE_ENCODED_VECTORS).format(
            vectors=relations["vectors"]))
        filled = sum(_fill_length(conn, relations, length) for length in lengths)
    finally:
        conn.execute(queries.FILL_UNLOCK, (queries.LOCK_NAMESPACE,))
    if filled:
        log.info("copied %d stored vectors into %s", filled, vectors_relation)
    return filled


def _fill_length(conn: psycopg.Connection, relations: dict[str, sql.Composable],
                 length: int) -> int:
    """The missing vectors of one byte length, FILL_BATCH at a time (each committed).
    Vectors holding NaN or infinity (which pgvector refuses, and `dbt test` reports) are
    left out."""
    row_dtype = np.dtype([("embedding_id", ">i8"), ("vector", f"V{length}")])
    dims = length // 4
    filled, after = 0, np.iinfo(np.int64).min
    while True:
        with conn.transaction():
            rows = read_packed_rows(conn, sql.SQL(queries.MISSING_VECTORS).format(
                after=sql.Literal(int(after)), length=sql.Literal(length),
                limit=sql.Literal(FILL_BATCH), **relations), row_dtype,
                "vectors missing from the pgvector companion")
            if rows.size == 0:
                return filled
            values = np.frombuffer(rows["vector"].tobytes(), dtype="<f4").reshape(-1, dims)
            finite = np.isfinite(values).all(axis=1)
            if not finite.all():
                log.warning("%d stored vectors hold NaN or infinity: not copied for "
                            "similarity search", int((~finite).sum()))
            conn.execute(queries.CLEAR_ENCODED_VECTORS)
            with conn.cursor() as cur, cur.copy(sql.SQL(queries.COPY_IN).format(
                    relation=sql.Identifier("encoded_vectors"),
                    columns=sql.SQL(queries.FILL_COLUMNS))) as copy:
                copy.write(PGCOPY_HEADER)
                encoded = _encoded_rows(rows["embedding_id"][finite], values[finite])
                copy.write(encoded.data)
                copy.write(PGCOPY_TRAILER)
            filled += conn.execute(sql.SQL(queries.FILL_FROM_ENCODED).format(
                **relations)).rowcount
        after = rows["embedding_id"][-1]


def _encoded_rows(embedding_ids: NDArray[np.int64], values: NDArray[np.float32]
                  ) -> NDArray[np.uint8]:
    """COPY BINARY rows of (FILL_COLUMNS): an id and the vector as a pgvector value."""
    return binary_rows(len(values), [("embedding_id", ">i8", embedding_ids),
                                     pgvector_field(values)]).view(np.uint8)
