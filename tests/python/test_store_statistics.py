"""Statistics after a run: a run that wrote a large share of a table analyzes it, a small
one leaves that to autovacuum (refresh_statistics for the vectors Python writes, the
analyze_if_stale post-hook for numeric_windows), against the project's PostgreSQL."""

from __future__ import annotations

import threading
import time

from prometheus.numeric.store import refresh_statistics

from conftest import Database


def _estimated_rows(db: Database) -> float:
    return float(db.value("select reltuples from pg_class where relname = 'grown'"))


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


def _manual_analyzes(db: Database, table: str) -> int:
    return int(db.value("select analyze_count from pg_stat_user_tables where relname = %s",
                        (table,)))


def test_staging_analyzes_numeric_windows_after_large_runs_only(small_db: Database) -> None:
    with small_db.dbt_runner() as dbt:
        dbt.invoke(["seed"])  # the registry, which staging reads

        def stage(run_id: str, limit: int) -> None:
            # run_in_flight: the runs' rows stay (no run finishes), so the table grows.
            dbt.invoke(["run", "--select", "+numeric_windows"],
                       {"run_id": run_id, "as_of": "2024-12-20", "market_id": "US_EQ",
                        "limit": limit, "window_days": 20, "run_in_flight": True})

        stage("first", 10)  # a new table: no statistics yet
        assert _manual_analyzes(small_db, "numeric_windows") == 1
        stage("second", 10)  # 10 rows more on 10: a large share
        assert _manual_analyzes(small_db, "numeric_windows") == 2
        stage("third", 1)  # 1 row on 20: left to autovacuum
        assert _manual_analyzes(small_db, "numeric_windows") == 2


def test_a_table_another_run_is_analyzing_is_not_analyzed_again(empty_db: Database) -> None:
    with empty_db.connect() as conn:
        conn.execute("create table busy (n int) with (autovacuum_enabled = off)")
        conn.execute("insert into busy select generate_series(1, 200)")
        # An index expression that sleeps on every row keeps an ANALYZE of the table busy.
        conn.execute("create function slow_identity(n int) returns int language plpgsql"
                     " immutable as $$ begin perform pg_sleep(0.01); return n; end $$")
        conn.execute("create index busy_slow on busy (slow_identity(n))")

    def other_run() -> None:
        with empty_db.connect() as other:
            other.execute("analyze busy")

    analyzing = threading.Thread(target=other_run)
    analyzing.start()
    try:
        with empty_db.connect() as conn:
            deadline = time.monotonic() + 10
            while not conn.execute("select exists (select 1 from pg_stat_progress_analyze"
                                   " where relid = 'busy'::regclass)").fetchone()[0]:
                assert time.monotonic() < deadline, "the other ANALYZE never started"
                time.sleep(0.02)
            started = time.monotonic()
            assert not refresh_statistics(conn, '"busy"', 200)  # never analyzed, but busy
            assert time.monotonic() - started < 1  # did not wait for the other's lock
    finally:
        analyzing.join()
