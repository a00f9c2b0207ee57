"""Date ranges and several models in one pass: the same windows as single-date runs."""

from __future__ import annotations

import datetime as dt
import re

import psycopg
import pytest

from conftest import Database
from reference import assert_vector_matches, reference_vector, reference_window

RANGE = ["--market-id", "US_EQ", "--limit", "12", "--offset", "40", "--window-days", "20"]


def run_id_of(stdout: str) -> str:
    match = re.search(r"run_id=(\S+)", stdout.strip().splitlines()[-1])
    assert match, stdout
    return match.group(1)


def staged_dates(db: Database, run_id: str) -> list[dt.date]:
    with db.connect() as conn:
        rows = conn.execute("select distinct as_of_date from analytics.numeric_windows"
                            " where run_id = %s order by 1", (run_id,)).fetchall()
    return [r[0] for r in rows]


def vectors(db: Database, model_id: str, run_id: str) -> dict[tuple, tuple]:
    """The vectors one run wrote for a model (other tests store the same models)."""
    with db.connect() as conn:
        rows = conn.execute(
            "select entity_id, as_of_date, vector, window_spec - 'run_id' from"
            " numeric_window_embeddings where model_id = %s and window_spec ->> 'run_id' = %s",
            (model_id, run_id)).fetchall()
    return {(r[0], r[1]): (bytes(r[2]), r[3]) for r in rows}


def market_trading_days(db: Database, start: dt.date, end: dt.date) -> list[dt.date]:
    """The market's trading days, straight from the source tables."""
    with db.connect() as conn:
        rows = conn.execute(
            "select distinct p.trade_date from prices_daily p join instruments i using"
            " (instrument_id) where i.market_id = 'US_EQ' and p.trade_date between %s and %s"
            " and p.close > 0 and p.close <> 'NaN' and p.close < 'Infinity'"
            " and p.volume >= 0 and p.volume <> 'NaN' and p.volume < 1e38 order by 1",
            (start, end)).fetchall()
    return [r[0] for r in rows]


def assert_match_reference(conn: psycopg.Connection, stored: dict[tuple, tuple],
                           keys: list[tuple]) -> None:
    """The stored 20-day, 384-dim vectors of these keys match SPEC.md's, computed apart."""
    for instrument_id, as_of in keys:
        window = reference_window(conn, instrument_id, as_of, 20)
        assert window is not None
        assert_vector_matches(stored[(instrument_id, as_of)][0], reference_vector(window, 384),
                              20, instrument_id)


def test_range_equals_single_date_runs_byte_for_byte(demo_db: Database) -> None:
    model = "num-regime-core-v1"
    ranged = demo_db.backfill("--start-date", "2025-01-15", "--end-date", "2025-01-24",
                              *RANGE, "--model-id", model, "--model-id", "numeric-simple-v1")
    assert ranged.returncode == 0, ranged.stderr
    range_run = run_id_of(ranged.stdout)
    dates = staged_dates(demo_db, range_run)
    # 2025-01-20 is a market holiday: no as-of date for it.
    assert dates == [dt.date(2025, 1, d) for d in (15, 16, 17, 21, 22, 23, 24)]
    from_range = vectors(demo_db, model, range_run)
    flat_from_range = vectors(demo_db, "numeric-simple-v1", range_run)
    assert len(from_range) == len(flat_from_range) == 12 * len(dates)
    for key, (vector, _) in from_range.items():
        # One pass, two encoders: the same 60 float32 values, padded or not.
        assert vector[:240] == flat_from_range[key][0] and len(vector) == 1536
    for as_of in (dates[0], dates[3], dates[-1]):
        single = demo_db.backfill("--as-of", as_of.isoformat(), *RANGE, "--model-id", model)
        assert single.returncode == 0, single.stderr
        from_single = vectors(demo_db, model, run_id_of(single.stdout))
        assert len(from_single) == 12
        for key, stored in from_single.items():
            assert stored == from_range[key], key
    with demo_db.connect() as conn:
        assert_match_reference(conn, from_range, list(from_range)[::11])


@pytest.mark.parametrize(("frequency", "known"), [
    ("daily", [dt.date(2024, 3, 28), dt.date(2024, 7, 5)]),
    # Good Friday 2024-03-29 and 2024-07-04 are holidays: those weeks end a day early or on
    # Friday as usual; the 2024-03 month ends on Thursday the 28th.
    ("weekly", [dt.date(2024, 3, 28), dt.date(2024, 7, 5), dt.date(2024, 12, 27)]),
    ("month-end", [dt.date(2024, 3, 28), dt.date(2024, 6, 28), dt.date(2024, 11, 29)]),
])
def test_frequencies_pick_the_markets_trading_days(demo_db: Database, frequency: str,
                                                   known: list[dt.date]) -> None:
    start, end = dt.date(2024, 3, 1), dt.date(2024, 12, 31)
    result = demo_db.backfill("--start-date", start.isoformat(), "--end-date", end.isoformat(),
                              "--frequency", frequency, "--market-id", "US_EQ", "--limit", "2",
                              "--window-days", "5", "--no-tests")
    assert result.returncode == 0, result.stderr
    days = market_trading_days(demo_db, start, end)
    if frequency == "daily":
        expected = days
    else:
        last_of: dict[tuple[int, int], dt.date] = {}
        for day in days:
            period = day.isocalendar()[:2] if frequency == "weekly" else (day.year, day.month)
            last_of[period] = max(day, last_of.get(period, day))
        expected = sorted(last_of.values())
    chosen = staged_dates(demo_db, run_id_of(result.stdout))
    assert chosen == expected
    assert set(known) <= set(chosen)
    assert dt.date(2024, 3, 29) not in chosen and dt.date(2024, 7, 4) not in chosen
    assert f"as_of_dates={len(expected)} " in result.stdout


def keys_of_run(db: Database, run_id: str) -> dict[tuple[str, dt.date, str], bytes]:
    with db.connect() as conn:
        rows = conn.execute(
            "select entity_id, as_of_date, model_id, vector from numeric_window_embeddings"
            " where window_spec ->> 'run_id' = %s", (run_id,)).fetchall()
    return {(r[0], r[1], r[2]): bytes(r[3]) for r in rows}


def test_shards_together_equal_the_unsharded_run(demo_db: Database) -> None:
    args = ["--as-of", "2025-01-27", "--market-id", "US_EQ", "--limit", "60", "--offset", "100",
            "--instrument-id", "US_EQ_X001", "--model-id", "num-portfolio-core-v1", "--no-tests"]
    shards = []
    for shard in ("0/2", "1/2"):
        result = demo_db.backfill(*args, "--shard", shard)
        assert result.returncode == 0, result.stderr
        shards.append(keys_of_run(demo_db, run_id_of(result.stdout)))
    whole = demo_db.backfill(*args)
    assert whole.returncode == 0, whole.stderr
    unsharded = keys_of_run(demo_db, run_id_of(whole.stdout))
    embedded = int(re.search(r"embedded=(\d+)", whole.stdout).group(1))  # type: ignore[union-attr]
    assert len(unsharded) == embedded >= 55
    assert shards[0] and shards[1] and not shards[0].keys() & shards[1].keys()
    assert {**shards[0], **shards[1]} == unsharded


def test_skip_existing_encodes_only_what_is_missing(demo_db: Database) -> None:
    args = ["--as-of", "2024-12-20", "--market-id", "US_EQ", "--limit", "20", "--offset", "470",
            "--model-id", "num-profile-core-v1", "--model-id", "num-scenario-core-v1"]
    first = demo_db.backfill(*args)
    assert first.returncode == 0, first.stderr
    first_run = run_id_of(first.stdout)
    with demo_db.connect() as conn:
        deleted = conn.execute(
            "delete from numeric_window_embeddings where window_spec ->> 'run_id' = %s and"
            " model_id = 'num-scenario-core-v1' and entity_id in ('US_EQ_0471', 'US_EQ_0475')",
            (first_run,)).rowcount
    assert deleted == 2
    again = demo_db.backfill(*args, "--skip-existing")
    assert again.returncode == 0, again.stderr
    assert " vectors=2 already_stored=18 " in again.stdout
    kept = keys_of_run(demo_db, first_run)
    assert len(kept) == 38  # untouched: still written by the first run
    redone = keys_of_run(demo_db, run_id_of(again.stdout))
    day = dt.date(2024, 12, 20)
    assert sorted(redone) == [("US_EQ_0471", day, "num-scenario-core-v1"),
                              ("US_EQ_0475", day, "num-scenario-core-v1")]
    # Everything is stored now: a third run bounds no window at all, it only lists them, and
    # once finished it leaves no row behind: the windows' latest staged rows stay.
    third = demo_db.backfill(*args, "--skip-existing")
    assert third.returncode == 0, third.stderr
    assert " embedded=0 " in f" {third.stdout}" and " vectors=0 already_stored=20 " in third.stdout
    with demo_db.connect() as conn:
        staged = conn.execute(
            "select run_id, window_status, count(*) from analytics.numeric_windows"
            " where as_of_date = '2024-12-20' and instrument_id between 'US_EQ_0471'"
            " and 'US_EQ_0490' and window_days = 63 group by 1, 2 order by 1").fetchall()
    assert sorted(staged) == sorted([(run_id_of(again.stdout), "ok", 2), (first_run, "ok", 18)])


def staged_rows(db: Database, run_id: str) -> list[tuple]:
    """The run's numeric_windows rows, without what differs between runs (id, time)."""
    with db.connect() as conn:
        rows = conn.execute(
            "select window_seq, instrument_id, selection_rank, as_of_date, window_status,"
            " rows_observed, rows_filled, first_row_number, last_row_number, start_date,"
            " end_date, rows_rejected, trading_days_after_end, is_stale"
            " from analytics.numeric_windows where run_id = %s order by window_seq",
            (run_id,)).fetchall()
    return [tuple(row) for row in rows]


def test_window_seq_numbers_the_run_by_rank_then_date(demo_db: Database) -> None:
    # 13 market instruments and one explicit, 9 as-of dates: window_seq is 1..n without gaps,
    # in selection order, then date order, and a run is staged the same twice.
    args = ["--start-date", "2025-01-06", "--end-date", "2025-01-17", "--market-id", "US_EQ",
            "--limit", "13", "--offset", "200", "--instrument-id", "US_EQ_X001",
            "--window-days", "20", "--model-id", "num-stab-core-v1", "--no-tests"]
    first = demo_db.backfill(*args)
    assert first.returncode == 0, first.stderr
    rows = staged_rows(demo_db, run_id_of(first.stdout))
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert [row[2:4] for row in rows] == sorted(row[2:4] for row in rows)
    assert rows[-1][1] == "US_EQ_X001"
    assert len(rows) == 14 * len(staged_dates(demo_db, run_id_of(first.stdout))) >= 14 * 8
    again = demo_db.backfill(*args)
    assert again.returncode == 0, again.stderr
    assert staged_rows(demo_db, run_id_of(again.stdout)) == rows
    # The first run's rows are superseded by the second's, now finished.
    assert staged_rows(demo_db, run_id_of(first.stdout)) == []


def summary_counts(stdout: str) -> str:
    """The summary line without what differs between runs."""
    return re.sub(r" (run_id|seconds)=\S+", "", stdout.strip().splitlines()[-1])


def test_a_range_staged_in_parts_is_the_range_staged_whole(demo_db: Database) -> None:
    # 13 market instruments and one explicit: parts of 5, 5 and 4 instruments, staged by one
    # dbt invocation each while the parts before are encoded.
    args = ["--start-date", "2025-01-06", "--end-date", "2025-01-17", "--market-id", "US_EQ",
            "--limit", "13", "--offset", "300", "--instrument-id", "US_EQ_X001",
            "--window-days", "20", "--model-id", "num-stab-core-v1"]
    whole = demo_db.backfill(*args, "--stage-parts", "1")
    assert whole.returncode == 0, whole.stderr
    assert "staging part" not in whole.stderr
    whole_rows = staged_rows(demo_db, run_id_of(whole.stdout))
    whole_vectors = vectors(demo_db, "num-stab-core-v1", run_id_of(whole.stdout))
    parted = demo_db.backfill(*args, "--stage-parts", "3")
    assert parted.returncode == 0, parted.stderr
    assert "staging part 3 of 3" in parted.stderr and "WARNING" not in parted.stderr
    assert summary_counts(parted.stdout) == summary_counts(whole.stdout)
    assert " instruments=14 " in parted.stdout
    parted_run = run_id_of(parted.stdout)
    assert staged_rows(demo_db, parted_run) == whole_rows
    stored = vectors(demo_db, "num-stab-core-v1", parted_run)
    assert stored == whole_vectors
    assert len(stored) == 14 * len(market_trading_days(demo_db, dt.date(2025, 1, 6),
                                                        dt.date(2025, 1, 17)))
    with demo_db.connect() as conn:
        assert_match_reference(conn, stored, list(stored)[::17])
        deleted = conn.execute(
            "delete from numeric_window_embeddings where window_spec ->> 'run_id' = %s"
            " and entity_id in ('US_EQ_0301', 'US_EQ_X001') and as_of_date = '2025-01-10'",
            (parted_run,)).rowcount
    assert deleted == 2
    # --skip-existing in two parts: each part lists its own stored keys; only the two
    # deleted windows (one in each part) are encoded again.
    again = demo_db.backfill(*args, "--skip-existing", "--stage-parts", "2")
    assert again.returncode == 0, again.stderr
    assert f" vectors=2 already_stored={len(stored) - 2} " in again.stdout
    assert vectors(demo_db, "num-stab-core-v1", run_id_of(again.stdout)) == {
        key: stored[key] for key in stored
        if key in {("US_EQ_0301", dt.date(2025, 1, 10)), ("US_EQ_X001", dt.date(2025, 1, 10))}}
    # More parts than instruments: the empty parts stage nothing.
    few = demo_db.backfill(*args[:6], "--limit", "1", *args[8:], "--stage-parts", "3")
    assert few.returncode == 0, few.stderr
    assert " instruments=2 " in few.stdout and "WARNING" not in few.stderr
