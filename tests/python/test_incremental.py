"""The daily returns are incremental: a new day appends, a corrected past recomputes only
the instruments it touches, and the table always equals a from-scratch computation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg

from conftest import Database
from reference import load_history, valid_mask

RETURNS = "analytics.int_daily_returns_computed"
STAGE = ["run", "--select", "+int_daily_returns_computed"]


def expected_returns(conn: psycopg.Connection) -> dict[tuple[str, dt.date], tuple]:
    """(close, volume, log_return, valid_row_number) per valid row, from prices_daily."""
    expected: dict[tuple[str, dt.date], tuple] = {}
    ids = [r[0] for r in conn.execute("select distinct instrument_id from prices_daily")]
    for instrument_id in ids:
        dates, closes, volumes = load_history(conn, instrument_id)
        keep = valid_mask(closes, volumes)
        dates, closes, volumes = dates[keep], closes[keep], volumes[keep]
        returns = np.zeros_like(closes)
        returns[1:] = np.log(closes[1:] / closes[:-1])
        for number, (day, close, volume, log_return) in enumerate(
                zip(dates.astype(dt.date), closes, volumes, returns, strict=True), 1):
            expected[(instrument_id, day)] = (close, volume, log_return, number)
    return expected


def stored_returns(conn: psycopg.Connection) -> dict[tuple[str, dt.date], tuple]:
    rows = conn.execute(f"select instrument_id, trade_date, close, volume, log_return,"
                        f" valid_row_number from {RETURNS}").fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def assert_equals_from_scratch(conn: psycopg.Connection) -> None:
    expected, stored = expected_returns(conn), stored_returns(conn)
    assert stored.keys() == expected.keys()
    keys = list(expected)
    # Columns close, volume, log_return, valid_row_number; a NULL becomes NaN and differs.
    want = np.array([expected[key] for key in keys], dtype=np.float64)
    got = np.array([stored[key] for key in keys], dtype=np.float64)
    exact = (got[:, [0, 1, 3]] == want[:, [0, 1, 3]]).all(axis=1)
    close = np.isclose(got[:, 2], want[:, 2], rtol=1e-15, atol=1e-300)
    wrong = [keys[i] for i in np.flatnonzero(~(exact & close))]
    assert not wrong, wrong[:5]


def row_versions(conn: psycopg.Connection) -> dict[str, set[str]]:
    """Per instrument, the transaction ids that wrote its stored rows."""
    versions: dict[str, set[str]] = {}
    for instrument_id, xmin in conn.execute(f"select instrument_id, xmin::text from {RETURNS}"):
        versions.setdefault(instrument_id, set()).add(xmin)
    return versions


def test_new_days_append_and_corrections_recompute_only_their_instruments(
        small_db: Database) -> None:
    with small_db.connect() as conn:
        ids = [r[0] for r in conn.execute(
            "select distinct instrument_id from prices_daily order by 1")]
        conn.execute("create table held_back as select * from prices_daily"
                     " where trade_date > '2024-12-20'")
        conn.execute("delete from prices_daily where trade_date > '2024-12-20'")
    first = small_db.dbt(*STAGE)
    assert first.returncode == 0, first.error
    with small_db.connect() as conn:
        assert_equals_from_scratch(conn)
        before = row_versions(conn)

        # The next days arrive; one instrument's past is corrected, one loses an old row,
        # one has an old row turn invalid, one gets a late row inserted in its past.
        corrected, deleted, invalidated, late = ids[1], ids[3], ids[5], ids[7]
        conn.execute("insert into prices_daily select * from held_back")
        conn.execute("update prices_daily set close = close * 1.01"
                     " where instrument_id = %s and trade_date = '2024-08-01'", (corrected,))
        conn.execute("delete from prices_daily where instrument_id = %s"
                     " and trade_date = '2024-09-03'", (deleted,))
        conn.execute("update prices_daily set volume = -1"
                     " where instrument_id = %s and trade_date = '2024-10-01'", (invalidated,))
        late_row = conn.execute(
            "select trade_date from prices_daily where instrument_id = %s"
            " and trade_date between '2024-07-01' and '2024-07-31' order by 1 limit 1",
            (late,)).fetchone()
        assert late_row is not None
        conn.execute("delete from prices_daily where instrument_id = %s and trade_date = %s",
                     (late, late_row[0]))
    second = small_db.dbt(*STAGE)
    assert second.returncode == 0, second.error
    with small_db.connect() as conn:
        assert_equals_from_scratch(conn)
        after = row_versions(conn)
    for instrument_id in (corrected, deleted, invalidated, late):
        assert len(after[instrument_id]) == 1, instrument_id  # recomputed whole, once
        assert not after[instrument_id] & before[instrument_id], instrument_id
    untouched = [i for i in ids if i not in (corrected, deleted, invalidated, late)]
    for instrument_id in untouched:
        # Old rows kept their version; only the appended days are new.
        assert before[instrument_id] <= after[instrument_id], instrument_id
        assert len(after[instrument_id] - before[instrument_id]) == 1, instrument_id

    with small_db.connect() as conn:
        conn.execute("insert into prices_daily select * from held_back"
                     " where instrument_id = %s on conflict do nothing", (late,))
        conn.execute("insert into prices_daily (instrument_id, trade_date, close, volume)"
                     " values (%s, %s, 10, 100)", (late, late_row[0]))
    third = small_db.dbt(*STAGE)
    assert third.returncode == 0, third.error
    with small_db.connect() as conn:
        assert_equals_from_scratch(conn)
        unchanged = row_versions(conn)
    assert all(unchanged[i] == after[i] for i in untouched)  # nothing new: nothing rewritten


def test_a_changed_returns_model_is_rebuilt_not_mixed(small_db: Database) -> None:
    """Rows computed by another version of the model must not mix with new ones: when the
    recorded deployment of int_daily_returns_computed no longer matches the project (as
    after an upgrade), the next run rebuilds the table whole."""
    args = ["--as-of", "2024-12-31", "--market-id", "US_EQ", "--limit", "5", "--no-tests"]
    first = small_db.backfill(*args)
    assert first.returncode == 0, first.stderr
    with small_db.connect() as conn:
        before = row_versions(conn)
    same = small_db.backfill(*args)
    assert same.returncode == 0 and "rebuilding" not in same.stderr, same.stderr
    with small_db.connect() as conn:
        assert row_versions(conn) == before  # current deployment: nothing rewritten
        conn.execute("delete from analytics.numeric_pipeline_deployments")  # "an upgrade"
    upgraded = small_db.backfill(*args)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "the daily returns model changed; rebuilding it" in upgraded.stderr
    with small_db.connect() as conn:
        after = row_versions(conn)
        assert_equals_from_scratch(conn)
    assert after.keys() == before.keys()
    assert all(not after[i] & before[i] for i in before)  # every row rewritten


def test_a_copy_of_a_deployed_database_is_not_deployed_again(scratch_db: Database) -> None:
    """The deployment is recorded by relation within its database (schema and name), so a
    copy under another name (scratch_db is `create database ... template` of the deployed
    demo market) runs at once: no redeploy, no rebuild of its daily returns."""
    with scratch_db.connect() as conn:
        before = row_versions(conn)
    result = scratch_db.backfill("--as-of", "2025-01-31", "--instrument-id", "US_EQ_0001",
                                 "--no-tests")
    assert result.returncode == 0, result.stderr
    # ": staging" is the plain path's line; a deploy logs "..., staging windows with dbt".
    assert ": staging windows with dbt" in result.stderr, result.stderr
    assert "deploying" not in result.stderr and "rebuilding" not in result.stderr, \
        result.stderr
    with scratch_db.connect() as conn:
        assert row_versions(conn) == before


def test_a_run_checks_the_rows_it_reads_and_a_plain_run_checks_all(
        small_db: Database) -> None:
    """A staging run checks the stored rows its windows read (from the last row before its
    first lookback through its last as-of date), so a daily run does not re-hash years of
    history; a correction older than that waits for the run that reads it, or for a plain
    `dbt run`, which checks every row."""
    with small_db.connect() as conn:
        ids = [r[0] for r in conn.execute(
            "select distinct instrument_id from prices_daily order by 1")]
    args = ["--as-of", "2024-12-31", "--market-id", "US_EQ", "--limit", "5", "--no-tests"]
    first = small_db.backfill(*args)
    assert first.returncode == 0, first.stderr
    span_first = dt.date(2024, 12, 31) - dt.timedelta(days=3 * 63)
    old, boundary, recent = ids[2], ids[4], ids[6]
    with small_db.connect() as conn:
        before = row_versions(conn)
        # boundary: its last row before the span, whose close the span's first return uses
        boundary_date = conn.execute(
            f"select max(trade_date) from {RETURNS} where instrument_id = %s"
            " and trade_date < %s", (boundary, span_first)).fetchone()[0]
        for instrument_id, day in ((old, dt.date(2024, 6, 10)), (boundary, boundary_date),
                                   (recent, dt.date(2024, 11, 1))):
            updated = conn.execute(
                "update prices_daily set close = close * 1.01"
                " where instrument_id = %s and trade_date = %s", (instrument_id, day))
            assert updated.rowcount == 1, (instrument_id, day)
    second = small_db.backfill(*args)
    assert second.returncode == 0, second.stderr
    with small_db.connect() as conn:
        after = row_versions(conn)
        expected, stored = expected_returns(conn), stored_returns(conn)
    for instrument_id in (boundary, recent):
        assert not after[instrument_id] & before[instrument_id], instrument_id  # recomputed
    assert after[old] == before[old]  # outside what the run reads: not checked yet
    stale = [key for key in expected if key[0] == old and stored[key][:2] != expected[key][:2]]
    assert stale == [(old, dt.date(2024, 6, 10))]
    assert all(after[i] == before[i] for i in ids if i not in (old, boundary, recent))

    plain = small_db.dbt(*STAGE)
    assert plain.returncode == 0, plain.error
    with small_db.connect() as conn:
        assert_equals_from_scratch(conn)
        assert not row_versions(conn)[old] & before[old]
