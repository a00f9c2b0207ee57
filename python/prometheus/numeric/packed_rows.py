"""Reads a query's rows as one numpy array: the server packs them into one bytea.

The query returns one row, (count, string_agg(int8send(a) || int4send(b) || ..., ''::bytea)):
every row's fields in binary send form, back to back, so numpy parses them in one call. One
value per query, not a COPY message per row: no Python step per row. Used for the staged
windows and valid rows (windows.py), reserved embedding_ids (store.py) and vectors missing
from the pgvector companion (window_vectors.py).
"""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

from prometheus.numeric.errors import PipelineError


def read_packed_rows(conn: psycopg.Connection, statement: sql.Composable,
                     row_dtype: np.dtype, what: str) -> np.ndarray:
    """Run statement and parse its packed rows, each row_dtype. A NULL field makes its row's
    bytes NULL, which string_agg leaves out: the count tells, and the rows (what the error
    calls them) are refused."""
    with conn.cursor(binary=True) as cur:
        row = cur.execute(statement).fetchone()
    count, packed = row if row else (0, None)
    packed = packed or b""
    if len(packed) != int(count) * row_dtype.itemsize:
        raise PipelineError(f"{what} are malformed: a NULL where a value belongs")
    return np.frombuffer(packed, dtype=row_dtype)
