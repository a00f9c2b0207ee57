"""Vectors follow their prices: after corrections of every kind, a --skip-existing run
re-embeds exactly the outdated keys (SPEC "Outdated vectors"), leaves the others untouched,
and a --dry-run reports the same without changing anything."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from conftest import CliResult, Database
from reference import (
    assert_vector_matches,
    reference_inputs,
    reference_vector,
    reference_window,
)

WINDOW_DAYS = 21
START, END = dt.date(2025, 1, 6), dt.date(2025, 1, 24)
MODEL = "num-stab-core-v1"
RANGE = ["--start-date", START.isoformat(), "--end-date", END.isoformat(), "--market-id",
         "US_EQ", "--limit", "30", "--offset", "100", "--window-days", str(WINDOW_DAYS),
         "--model-id", MODEL]
# One instrument per kind of change (all in the range's selection, US_EQ_0101..0130).
CLOSE, VOLUME, DELETED, LATE, ZEROED, FIXED, OLD, SHORT = (
    f"US_EQ_{n:04d}" for n in (101, 103, 105, 107, 109, 111, 113, 115))
PRICES = "prices_daily where instrument_id = %s and trade_date = %s"


def stored(db: Database) -> dict[tuple[str, dt.date], tuple[bytes, Any, str | None]]:
    """(instrument, as_of) -> (vector, created_at, fingerprint) of the model's vectors."""
    with db.connect() as conn:
        rows = conn.execute(
            "select entity_id, as_of_date, vector, created_at,"
            " window_spec ->> 'inputs_fingerprint' from numeric_window_embeddings"
            " where model_id = %s", (MODEL,)).fetchall()
    return {(r[0], r[1]): (bytes(r[2]), r[3], r[4]) for r in rows}


def inputs(db: Database, keys: list[tuple[str, dt.date]]) -> dict[tuple, tuple | None]:
    with db.connect() as conn:
        return {key: reference_inputs(conn, key[0], key[1], WINDOW_DAYS) for key in keys}


def counts(result: CliResult) -> dict[str, str]:
    summary = result.summary()
    return {k: v for k, v in summary.items() if k not in ("run_id", "seconds")}


def test_corrections_refresh_exactly_the_outdated_vectors(scratch_db: Database) -> None:
    db = scratch_db
    with db.connect() as conn:
        # Before the backfill: a row that arrives late, and a bad row that is fixed later.
        conn.execute("create table held_back as select * from " + PRICES,
                     (LATE, dt.date(2025, 1, 14)))
        assert conn.execute("delete from " + PRICES, (LATE, dt.date(2025, 1, 14))).rowcount == 1
        assert conn.execute("update prices_daily set close = 0 where instrument_id = %s"
                            " and trade_date = %s", (FIXED, dt.date(2025, 1, 10))).rowcount == 1
    first = db.backfill(*RANGE)
    assert first.returncode == 0, first.stderr
    before = stored(db)
    keys = sorted(before)
    inputs_before = inputs(db, keys)
    assert all(fingerprint for _, _, fingerprint in before.values())

    with db.connect() as conn:
        changes = [
            ("update prices_daily set close = close * 1.1 where instrument_id = %s"
             " and trade_date = %s", (CLOSE, dt.date(2025, 1, 15))),
            ("update prices_daily set volume = volume + 12345 where instrument_id = %s"
             " and trade_date = %s", (VOLUME, dt.date(2025, 1, 10))),
            ("delete from " + PRICES, (DELETED, dt.date(2025, 1, 13))),
            ("insert into prices_daily select * from held_back", ()),
            ("update prices_daily set close = 0 where instrument_id = %s"
             " and trade_date = %s", (ZEROED, dt.date(2025, 1, 16))),
            ("update prices_daily set close = 25 where instrument_id = %s"
             " and trade_date = %s", (FIXED, dt.date(2025, 1, 10))),
            # Older than every window's lookback and than the row before each first row.
            ("update prices_daily set close = close * 1.2 where instrument_id = %s"
             " and trade_date = %s", (OLD, dt.date(2024, 9, 3))),
        ]
        for statement, params in changes:
            assert conn.execute(statement, params).rowcount == 1, statement
        # Too little history left for the last windows (fewer than 18 of 21 rows).
        conn.execute("delete from prices_daily where instrument_id = %s"
                     " and trade_date between '2024-12-09' and '2025-01-24'", (SHORT,))

    inputs_after = inputs(db, keys)
    outdated = {key for key in keys if inputs_after[key] != inputs_before[key]}
    short = {key for key in outdated if inputs_after[key] is None}
    refreshed = outdated - short
    assert {key[0] for key in refreshed} == {CLOSE, VOLUME, DELETED, LATE, ZEROED, FIXED,
                                             SHORT}
    assert short and all(key[0] == SHORT for key in short)

    dry = db.backfill(*RANGE, "--skip-existing", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert stored(db) == before  # no vector changed
    assert db.value("select count(*) from analytics.numeric_windows"
                    " where run_id = %s", (dry.summary()["run_id"],)) == 0
    listed = {(row[0], row[1]): row[2] for row in db_rows(
        db, "select entity_id, as_of_date, reason from analytics.outdated_embeddings"
            " where model_id = %s", MODEL)}
    assert listed.keys() == outdated  # known before any vector is rewritten
    assert {listed[key] for key in short} == {"insufficient_history"}

    real = db.backfill(*RANGE, "--skip-existing")
    assert real.returncode == 0, real.stderr
    assert counts(dry) == counts(real)
    summary = real.summary()
    assert int(summary["refreshed"]) == int(summary["vectors"]) == len(refreshed)
    assert int(summary["outdated_left"]) == len(short)

    after = stored(db)
    assert after.keys() == before.keys()  # nothing added, the short windows' vectors kept
    for key in keys:
        if key in refreshed:
            assert after[key][1] > before[key][1], key
        else:
            assert after[key] == before[key], key  # same bytes, same created_at
    with db.connect() as conn:
        for key in sorted(refreshed):
            window = reference_window(conn, key[0], key[1], WINDOW_DAYS)
            assert window is not None
            assert_vector_matches(after[key][0], reference_vector(window, 384), WINDOW_DAYS,
                                  f"{key}")
    assert {(row[0], row[1]) for row in db_rows(
        db, "select entity_id, as_of_date from analytics.outdated_embeddings"
            " where reason = 'insufficient_history' and model_id = %s", MODEL)} == short

    again = db.backfill(*RANGE, "--skip-existing")
    assert again.returncode == 0, again.stderr
    assert again.summary()["refreshed"] == "0" and again.summary()["vectors"] == "0"
    assert stored(db) == after
    # The change log keeps only what still outdates a vector (the short instrument).
    assert {row[0] for row in db_rows(
        db, "select instrument_id from numeric_window_embedding_changes")} == {SHORT}


def db_rows(db: Database, query: str, *params: object) -> list[tuple]:
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(query, params).fetchall()]


def test_a_vector_without_fingerprint_is_verified_once(scratch_db: Database) -> None:
    db = scratch_db
    args = ["--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit", "6",
            "--model-id", MODEL]
    assert db.backfill(*args).returncode == 0
    with db.connect() as conn:
        # As written before fingerprints (or by the original tool): no fingerprint; one of
        # them holds other bytes than its window's encoding now.
        conn.execute("update numeric_window_embeddings set window_spec = window_spec"
                      " - 'inputs_fingerprint' where model_id = %s", (MODEL,))
        conn.execute("update numeric_window_embeddings set vector = overlay(vector placing"
                     " '\\x0000803f'::bytea from 1) where model_id = %s"
                     " and entity_id = 'US_EQ_0002'", (MODEL,))
    before = stored(db)
    result = db.backfill(*args, "--skip-existing")
    assert result.returncode == 0, result.stderr
    assert result.summary()["refreshed"] == "1"
    after = stored(db)
    for key, (vector, created_at, fingerprint) in after.items():
        assert fingerprint is not None
        if key[0] == "US_EQ_0002":
            assert vector != before[key][0] and created_at > before[key][1]
        else:
            assert (vector, created_at) == before[key][:2]  # verified, not rewritten
    again = db.backfill(*args, "--skip-existing")
    assert again.summary()["already_stored"] == "6" and again.summary()["vectors"] == "0"


@pytest.mark.parametrize("skip_existing", [True, False])
def test_a_model_whose_encoding_changed_is_outdated(scratch_db: Database,
                                                    skip_existing: bool) -> None:
    db = scratch_db
    args = ["--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit", "4",
            "--model-id", MODEL]
    assert db.backfill(*args).returncode == 0
    with db.connect() as conn:
        # As if written when the registry gave the model another dim: the vectors and the
        # registry as deployed then say 256.
        conn.execute("update numeric_window_embeddings set window_spec = window_spec"
                     " || jsonb_build_object('dim', 256, 'inputs_fingerprint',"
                     " replace(window_spec ->> 'inputs_fingerprint', '/384/', '/256/'))"
                     " where model_id = %s", (MODEL,))
        conn.execute("update numeric_embedding_models_deployed set dim = 256"
                     " where model_id = %s", (MODEL,))
    recorded = db.dbt("run", "--select", "stg_historical_db__instruments")  # on-run-end
    assert recorded.returncode == 0, recorded.error
    assert db_rows(db, "select reason, model_id from numeric_window_embedding_changes") == [
        ("model_changed", MODEL)]
    assert {row[0] for row in db_rows(
        db, "select reason from analytics.outdated_embeddings")} == {"model_changed"}
    assert db.value("select vectors_outdated from analytics.embedding_coverage"
                    " where model_id = %s and as_of_date = '2025-01-31'", (MODEL,)) == 4
    result = db.backfill(*args, *(["--skip-existing"] if skip_existing else []))
    assert result.returncode == 0, result.stderr
    assert result.summary()["refreshed"] == ("4" if skip_existing else "0")
    assert result.summary()["vectors"] == "4"
    assert db.value("select count(*) from analytics.outdated_embeddings") == 0
    assert db.value("select count(*) from numeric_window_embedding_changes") == 0


def test_every_fingerprint_is_what_sql_computes_from_the_daily_returns(
        demo_db: Database, original_run) -> None:
    """The encoder's fingerprints (numpy) and outdated_embeddings' (SQL) agree on every
    vector of the original command: with a change recorded before all of them, none is
    listed."""
    with demo_db.connect() as conn, conn.transaction():
        conn.execute("insert into numeric_window_embedding_changes"
                     " (reason, instrument_id, first_changed_date)"
                     " select 'prices_changed', entity_id, '2000-01-01'"
                     " from numeric_window_embeddings where model_id = %s"
                     " and as_of_date = '2025-01-31'", (MODEL,))
        checked = conn.execute(
            "select count(distinct embedding_id) from numeric_window_embeddings"
            " where model_id = %s and as_of_date = '2025-01-31'"
            " and window_spec ? 'inputs_fingerprint'", (MODEL,)).fetchone()[0]
        listed = conn.execute("select count(*) from analytics.outdated_embeddings"
                              ).fetchone()[0]
        conn.execute("delete from numeric_window_embedding_changes")
    assert checked == 496 and listed == 0
