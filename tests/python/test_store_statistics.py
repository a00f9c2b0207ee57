"""refresh_statistics: a run that wrote a large share of the table analyzes it, a small
one leaves that to autovacuum (against the project's PostgreSQL)."""

from __future__ import annotations

from prometheus.numeric.store import refresh_statistics

from conftest import Database


def _estimated_rows(db: Database) -> float:
    with db.connect() as conn:
        row = conn.execute("select reltuples from pg_class where relname = 'grown'").fetchone()
    assert row is not None
    return float(row[0])


def test_statistics_follow_large_writes_only(empty_db: Database) -> None:
    with empty_db.connect() as conn:
        # autovacuum must not analyze behind the test's back
        conn.execute("create table grown (n int) with (autovacuum_enabled = off)")
        conn.execute("insert into grown select generate_series(1, 1000)")
        assert refresh_statistics(conn, '"grown"', 1000)  # never analyzed
    assert _estimated_rows(empty_db) == 1000

    with empty_db.connect() as conn:
        conn.execute("insert into grown select generate_series(1, 99)")
        assert not refresh_statistics(conn, '"grown"', 99)  # under 10%: left to autovacuum
        assert not refresh_statistics(conn, '"missing"', 99)
        # an error is not the run's: logged, and no analyze
        assert not refresh_statistics(conn, '"another_db"."public"."grown"', 99)
    assert _estimated_rows(empty_db) == 1000

    # The name as dbt gives it: database, schema and table, quoted.
    qualified = f'"{empty_db.env["PGDATABASE"]}"."public"."grown"'
    with empty_db.connect() as conn:
        conn.execute("insert into grown select generate_series(1, 400)")
        assert refresh_statistics(conn, qualified, 400)
    assert _estimated_rows(empty_db) == 1499
