"""The pipeline end to end on the demo market, checked against reference.py (SPEC.md)."""

from __future__ import annotations

import datetime as dt
import gc

import numpy as np

from conftest import ORIGINAL_COMMAND, Database
from reference import assert_vector_matches, reference_vector, reference_window, select_instruments

AS_OF = dt.date(2025, 1, 31)

ACCEPTANCE_QUERY = """
SELECT entity_type, model_id, COUNT(*) AS n,
       MIN(octet_length(vector)) AS min_bytes,
       MAX(octet_length(vector)) AS max_bytes
FROM numeric_window_embeddings
WHERE model_id = 'num-stab-core-v1'
GROUP BY entity_type, model_id;
"""


def stored_vectors(db: Database, model_id: str, as_of: dt.date = AS_OF) -> dict[str, tuple]:
    with db.connect() as conn:
        rows = conn.execute(
            "select entity_id, vector, window_spec, embedding_id from numeric_window_embeddings"
            " where model_id = %s and as_of_date = %s and entity_type = 'INSTRUMENT'",
            (model_id, as_of)).fetchall()
    return {r[0]: (bytes(r[1]), r[2], r[3]) for r in rows}


def check_against_reference(db: Database, model_id: str, dim: int | None, window_days: int,
                            instruments: list[str], as_of: dt.date = AS_OF,
                            whole_selection: bool = True) -> dict[str, int]:
    stored = stored_vectors(db, model_id, as_of)
    counts = {"embedded": 0, "skipped": 0, "filled": 0}
    with db.connect() as conn:
        for instrument_id in instruments:
            window = reference_window(conn, instrument_id, as_of, window_days)
            if window is None:
                counts["skipped"] += 1
                assert instrument_id not in stored, f"{instrument_id} should be skipped"
                continue
            counts["embedded"] += 1
            counts["filled"] += window.rows_filled > 0
            vector, spec, _ = stored[instrument_id]
            assert_vector_matches(vector, reference_vector(window, dim), window_days,
                                  f"{model_id}/{instrument_id}")
            assert spec["rows_observed"] == window.rows_observed
            assert spec["rows_filled"] == window.rows_filled
            assert spec["start_date"] == window.start_date.isoformat()
            assert spec["end_date"] == window.end_date.isoformat()
            assert spec["window_days"] == window_days
            assert spec["lookback_days"] == 3 * window_days
            assert spec["entity_type"] == "INSTRUMENT"
            assert spec["features"] == ["close", "volume", "log_return"]
    if whole_selection:
        assert len(stored) == counts["embedded"], "vectors stored beyond the selection"
    return counts


# window_spec as the staged window says it, built in SQL independently of the writer (which
# renders the JSON text with numpy); the inputs fingerprint is checked in test_outdated.py.
EXPECTED_WINDOW_SPECS = """
select
    stored.entity_id,
    stored.as_of_date,
    stored.window_spec - 'inputs_fingerprint',
    jsonb_build_object(
        'window_days', windows.window_days, 'entity_type', 'INSTRUMENT',
        'features', '["close", "volume", "log_return"]'::jsonb,
        'start_date', windows.start_date, 'end_date', windows.end_date,
        'last_trade_date', windows.end_date, 'rows_observed', windows.rows_observed,
        'rows_filled', windows.rows_filled, 'rows_rejected', windows.rows_rejected,
        'trading_days_after_end', windows.trading_days_after_end,
        'is_stale', windows.is_stale, 'min_rows', windows.min_rows,
        'lookback_days', windows.lookback_days, 'encoder', models.encoder,
        'dim', case when models.encoder = 'flatten' then 3 * windows.window_days
               else models.dim end,
        'model_id', stored.model_id, 'run_id', windows.run_id
    ) as expected
from analytics.numeric_windows as windows
inner join numeric_window_embeddings as stored
    on stored.entity_id = windows.instrument_id and stored.as_of_date = windows.as_of_date
inner join analytics.numeric_embedding_models as models
    on models.model_id = stored.model_id
where windows.run_id = %s and stored.window_spec ->> 'run_id' = %s
"""


def assert_window_specs_match_staging(db: Database, run_id: str, expected_count: int) -> None:
    with db.connect() as conn:
        rows = conn.execute(EXPECTED_WINDOW_SPECS, (run_id, run_id)).fetchall()
    assert len(rows) == expected_count
    for entity_id, as_of_date, stored, expected in rows:
        assert stored == expected, (entity_id, as_of_date)


def test_original_command_matches_spec(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn:
        instruments = select_instruments(conn, "US_EQ", 500, 0, [])
    assert len(instruments) == 500
    counts = check_against_reference(demo_db, "num-stab-core-v1", 384, 63, instruments)
    summary = original_run.summary()
    assert int(summary["embedded"]) == counts["embedded"]
    assert int(summary["skipped"]) == counts["skipped"] == int(summary["insufficient_history"])
    assert int(summary["filled"]) == counts["filled"]
    # The demo market holds each case the contract names: skips, filled windows, stale.
    assert counts["skipped"] >= 3 and counts["filled"] >= 2
    assert int(summary["stale"]) >= 1
    assert int(summary["rejected_rows"]) >= 10
    assert int(summary["vectors"]) == counts["embedded"]


def test_main_in_process_leaves_the_garbage_collector_alone(original_run) -> None:
    # Only the console script (cli.run), whose process ends with the run, freezes what dbt's
    # imports made: a caller of cli.main() in a longer-lived process (this one) must keep
    # collecting everything, or each call would pin its garbage for good.
    assert original_run.returncode == 0
    assert gc.get_freeze_count() == 0


def test_windows_with_rejected_rows_skip_them(demo_db: Database, original_run) -> None:
    """A bad row inside a window is left out, and the next log-return spans the gap."""
    with demo_db.connect() as conn:
        affected = conn.execute(
            "select distinct instrument_id from prices_daily where instrument_id like 'US_EQ_0%%'"
            " and trade_date between %s and %s and (close is null or close <= 0"
            " or close = 'NaN' or close in ('Infinity', '-Infinity') or volume is null"
            " or volume < 0 or volume = 'NaN' or volume in ('Infinity', '-Infinity')"
            " or volume >= 1e38)", (AS_OF - dt.timedelta(days=189), AS_OF)).fetchall()
    affected_ids = sorted(r[0] for r in affected)
    assert len(affected_ids) >= 8
    counts = check_against_reference(demo_db, "num-stab-core-v1", 384, 63, affected_ids,
                                     whole_selection=False)
    assert counts["embedded"] == len(affected_ids)


def test_analysts_see_each_window_as_it_was_encoded(demo_db: Database) -> None:
    """numeric_window_values, the analysts' view of a staged window's rows (its own SQL of the
    front fill), gives the reference's values row for row, filled rows included."""
    result = demo_db.backfill("--as-of", AS_OF.isoformat(), "--market-id", "US_EQ",
                              "--limit", "20", "--model-id", "num-stab-core-v1")
    assert result.returncode == 0, result.stderr
    with demo_db.connect() as conn:
        rows = conn.execute(
            "select instrument_id, count(*) filter (where is_filled),"
            " array_agg(array[close, volume, log_return] order by row_index)"
            " from analytics.numeric_window_values where run_id = %s group by instrument_id",
            (result.summary()["run_id"],)).fetchall()
        windows = {r[0]: reference_window(conn, r[0], AS_OF, 63) for r in rows}
    assert len(rows) == int(result.summary()["embedded"]) >= 18
    assert sum(filled > 0 for _, filled, _ in rows) == int(result.summary()["filled"]) >= 1
    for instrument_id, filled, values in rows:
        window = windows[instrument_id]
        assert window is not None and filled == window.rows_filled, instrument_id
        actual = np.array(values, dtype=np.float64)
        assert np.array_equal(actual[:, :2], window.values[:, :2]), instrument_id
        np.testing.assert_allclose(actual[:, 2], window.values[:, 2], rtol=1e-14, atol=1e-300,
                                   err_msg=instrument_id)


def test_acceptance_query_gives_1536_bytes(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn:
        rows = conn.execute(ACCEPTANCE_QUERY).fetchall()
    assert len(rows) == 1
    entity_type, model_id, count, min_bytes, max_bytes = rows[0]
    assert (entity_type, model_id) == ("INSTRUMENT", "num-stab-core-v1")
    assert count == int(original_run.summary()["embedded"])
    assert (min_bytes, max_bytes) == (1536, 1536)


def test_stale_windows_are_counted_and_recorded(demo_db: Database, original_run) -> None:
    assert " stale=1 " in original_run.stdout
    with demo_db.connect() as conn:
        spec = conn.execute(
            "select window_spec from numeric_window_embeddings where entity_id = 'US_EQ_0401'"
            " and model_id = 'num-stab-core-v1' and as_of_date = '2025-01-31'").fetchone()[0]
    assert spec["last_trade_date"] == "2025-01-15"
    assert spec["is_stale"] is True and spec["trading_days_after_end"] > 5


def test_rerun_replaces_and_never_duplicates(demo_db: Database, original_run) -> None:
    before = stored_vectors(demo_db, "num-stab-core-v1")
    again = demo_db.backfill(*ORIGINAL_COMMAND)
    assert again.returncode == 0, again.stderr
    after = stored_vectors(demo_db, "num-stab-core-v1")
    assert after.keys() == before.keys()
    for instrument_id, (vector, _, embedding_id) in before.items():
        assert after[instrument_id][0] == vector
        assert after[instrument_id][2] == embedding_id  # replaced in place, same key
    with demo_db.connect() as conn:
        duplicates = conn.execute(
            "select count(*) from (select 1 from numeric_window_embeddings group by"
            " entity_type, entity_id, as_of_date, model_id having count(*) > 1) d").fetchone()
    assert duplicates == (0,)
    assert again.summary()["run_id"] != original_run.summary()["run_id"]


def test_new_replaced_and_mixed_batches_store_the_staged_window_spec(scratch_db: Database
                                                                     ) -> None:
    """New keys go in by a straight COPY, stored ones by an upsert, a batch can hold both:
    every path writes the window_spec the staged window describes (stale windows, a
    market-less explicit instrument whose trading_days_after_end is null, filled ones)."""
    with scratch_db.connect() as conn:  # prices for an instrument missing from `instruments`
        conn.execute("insert into prices_daily (instrument_id, trade_date, close, volume)"
                     " select 'NO_MARKET_01', trade_date, close, volume from prices_daily"
                     " where instrument_id = 'US_EQ_0001' on conflict do nothing")
    args = ["--as-of", "2025-01-30", "--market-id", "US_EQ", "--limit", "500",
            "--instrument-id", "NO_MARKET_01", "--instrument-id", "EU_EQ_0007",
            "--model-id", "num-stab-core-v1", "--batch-size", "150"]
    first = scratch_db.backfill(*args)
    assert first.returncode == 0, first.stderr
    embedded = int(first.summary()["embedded"])
    assert int(first.summary()["stale"]) >= 1 and int(first.summary()["filled"]) >= 1
    assert_window_specs_match_staging(scratch_db, first.summary()["run_id"], embedded)
    with scratch_db.connect() as conn:
        assert conn.execute(
            "select count(*) from numeric_window_embeddings where as_of_date = '2025-01-30'"
            " and model_id = 'num-stab-core-v1' and window_spec -> 'trading_days_after_end'"
            " = 'null'::jsonb").fetchone() == (1,)  # NO_MARKET_01 has no market calendar
        # Every other window is forgotten: each batch of the next run is half new, half stored.
        conn.execute("delete from numeric_window_embeddings where as_of_date = '2025-01-30'"
                     " and model_id = 'num-stab-core-v1' and embedding_id % 2 = 0")
    for _ in range(2):  # mixed batches, then a plain re-run of stored keys
        again = scratch_db.backfill(*args)
        assert again.returncode == 0, again.stderr
        assert int(again.summary()["vectors"]) == embedded
        assert_window_specs_match_staging(scratch_db, again.summary()["run_id"], embedded)


def test_flatten_model_is_the_default(demo_db: Database) -> None:
    result = demo_db.backfill("--as-of", "2025-01-31", "--window-days", "20",
                              "--market-id", "US_EQ", "--limit", "40", "--offset", "5")
    assert result.returncode == 0, result.stderr
    assert "models=numeric-simple-v1" in result.stdout
    with demo_db.connect() as conn:
        instruments = select_instruments(conn, "US_EQ", 40, 5, [])
        # This run's rows: other test files on this worker store other flatten windows.
        sizes = conn.execute(
            "select min(octet_length(vector)), max(octet_length(vector)) from"
            " numeric_window_embeddings where model_id = 'numeric-simple-v1'"
            " and window_spec ->> 'run_id' = %s", (result.summary()["run_id"],)).fetchone()
    assert sizes == (240, 240)
    counts = check_against_reference(demo_db, "numeric-simple-v1", None, 20, instruments)
    assert counts["embedded"] == 40


def test_explicit_instruments_join_the_market_page(demo_db: Database) -> None:
    """--instrument-id adds instruments whatever their status or asset class."""
    explicit = ["US_EQ_X003", "US_ETF_002", "US_EQ_0002", "EU_EQ_0007"]
    result = demo_db.backfill("--as-of", "2025-01-24", "--window-days", "30",
                              "--market-id", "US_EQ", "--limit", "3", "--offset", "1",
                              *[arg for i in explicit for arg in ("--instrument-id", i)],
                              "--model-id", "num-regime-core-v1", "--min-days", "10")
    assert result.returncode == 0, result.stderr
    as_of = dt.date(2025, 1, 24)
    with demo_db.connect() as conn:
        instruments = select_instruments(conn, "US_EQ", 3, 1, explicit)
    assert instruments == ["US_EQ_0002", "US_EQ_0003", "US_EQ_0004",
                           "US_EQ_X003", "US_ETF_002", "EU_EQ_0007"]
    stored = stored_vectors(demo_db, "num-regime-core-v1", as_of)
    assert sorted(stored) == sorted(instruments)
    for instrument_id in instruments:
        with demo_db.connect() as conn:
            window = reference_window(conn, instrument_id, as_of, 30, min_days=10)
        assert window is not None
        assert_vector_matches(stored[instrument_id][0], reference_vector(window, 384), 30,
                              instrument_id)


def test_as_of_on_a_holiday_ends_on_the_last_trade_date(demo_db: Database) -> None:
    holiday = dt.date(2025, 1, 20)  # a weekday with no trading in the demo calendar
    result = demo_db.backfill("--as-of", holiday.isoformat(), "--market-id", "US_EQ",
                              "--limit", "5", "--model-id", "num-profile-core-v1")
    assert result.returncode == 0, result.stderr
    stored = stored_vectors(demo_db, "num-profile-core-v1", holiday)
    assert len(stored) == 5
    end_dates = []
    for instrument_id, (vector, spec, _) in stored.items():
        with demo_db.connect() as conn:
            window = reference_window(conn, instrument_id, holiday, 63)
        assert window is not None
        assert spec["end_date"] == window.end_date.isoformat()
        assert_vector_matches(vector, reference_vector(window, 384), 63, instrument_id)
        end_dates.append(spec["end_date"])
    assert max(end_dates) == "2025-01-17"  # the last trading day before the holiday
