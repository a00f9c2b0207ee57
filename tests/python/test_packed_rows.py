"""packed_rows.read_packed_rows against the server: what the send functions pack is what numpy
reads, field by field, and a NULL is refused instead of losing its row."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from psycopg import sql

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.packed_rows import read_packed_rows
from prometheus.numeric.windows import PG_EPOCH

from conftest import Database

ROW = np.dtype([("id", ">i8"), ("rank", ">i4"), ("day", ">i4"), ("value", ">f8"),
                ("flag", "u1")])
PACKED = """
select count(*), string_agg(
    int8send(id) || int4send(rank) || date_send(day) || float8send(value) || boolsend(flag),
    ''::bytea order by id)
from (values {rows}) as given (id, rank, day, value, flag)
"""
ROWS = """
    (3::bigint, 7, date '1999-12-31', 'NaN'::float8, true),
    (1::bigint, -2, date '2025-01-31', 1.5::float8, false),
    (2::bigint, 2147483647, date '2000-01-01', -0.25::float8, true)
"""


def test_packed_rows_read_back_field_by_field(empty_db: Database) -> None:
    with empty_db.connect() as conn:
        rows = read_packed_rows(conn, sql.SQL(PACKED).format(rows=sql.SQL(ROWS)), ROW,
                                "test rows")
        none = read_packed_rows(conn, sql.SQL(PACKED + " where false").format(
            rows=sql.SQL(ROWS)), ROW, "test rows")
    assert rows["id"].tolist() == [1, 2, 3]
    assert rows["rank"].tolist() == [-2, 2147483647, 7]
    days = (PG_EPOCH + rows["day"].astype("timedelta64[D]")).astype(dt.date).tolist()
    assert days == [dt.date(2025, 1, 31), dt.date(2000, 1, 1), dt.date(1999, 12, 31)]
    assert rows["value"][:2].tolist() == [1.5, -0.25] and np.isnan(rows["value"][2])
    assert rows["flag"].tolist() == [0, 1, 1]
    assert none.shape == (0,)


def test_a_null_field_is_refused_not_dropped(empty_db: Database) -> None:
    with_null = ROWS.replace("-0.25::float8", "null::float8")
    refused = "test rows are malformed: a NULL where a value belongs"  # named by the caller
    with empty_db.connect() as conn, pytest.raises(PipelineError, match=refused):
        read_packed_rows(conn, sql.SQL(PACKED).format(rows=sql.SQL(with_null)), ROW,
                         "test rows")
