"""numeric_windows follows the windows staged, not the runs, and `dbt run` / `dbt test` work
by hand as a dbt user expects."""

from __future__ import annotations

import re

from prometheus.numeric import queries

from conftest import Database

RANGE = ["--start-date", "2025-01-06", "--end-date", "2025-01-24", "--market-id", "US_EQ",
         "--limit", "40", "--window-days", "21", "--model-id", "num-stab-core-v1",
         "--no-tests"]


def staged(db: Database) -> dict[str, int]:
    """Rows of numeric_windows per run."""
    with db.connect() as conn:
        rows = conn.execute("select run_id, count(*) from analytics.numeric_windows"
                            " group by run_id").fetchall()
    return {run_id: count for run_id, count in rows}


def listed(db: Database) -> dict[str, int]:
    """Rows of int_windows_already_stored (keys --skip-existing found stored) per run."""
    with db.connect() as conn:
        rows = conn.execute("select run_id, count(*) from analytics.int_windows_already_stored"
                            " group by run_id").fetchall()
    return {run_id: count for run_id, count in rows}


def test_the_same_range_three_times_keeps_one_run_of_rows(scratch_db: Database) -> None:
    runs = []
    for _ in range(3):
        result = scratch_db.backfill(*RANGE)
        assert result.returncode == 0, result.stderr
        # The copy is deployed already (no run builds every model): plain runs stage
        # without listing stored keys.
        assert "int_windows_already_stored" not in result.stderr
        runs.append(result.summary())
        if len(runs) == 1:
            after_one = sum(staged(scratch_db).values())
    assert after_one == 40 * 13  # 40 instruments x 13 trading days (01-20 is a holiday)
    assert staged(scratch_db) == {runs[-1]["run_id"]: after_one}  # at most 1.2x: exactly 1x
    # --skip-existing lists the stored windows (not staged), stages again those without a
    # vector (too little history): when it is done its list goes, its staged rows supersede
    # the older ones, the other windows keep theirs.
    skipped = scratch_db.backfill(*RANGE, "--skip-existing")
    assert skipped.returncode == 0, skipped.stderr
    assert "dbt model int_windows_already_stored: success" in skipped.stderr
    embedded, short = int(runs[-1]["embedded"]), int(runs[-1]["skipped"])
    assert skipped.summary()["already_stored"] == str(embedded) and short > 0
    assert skipped.summary()["instruments"] == "40" and skipped.summary()["as_of_dates"] == "13"
    assert staged(scratch_db) == {runs[-1]["run_id"]: embedded,
                                  skipped.summary()["run_id"]: short}
    assert listed(scratch_db) == {}


def test_rows_of_a_run_in_flight_stay_until_it_finishes(scratch_db: Database) -> None:
    # A run in flight: its rows staged, its lock held (as the CLI holds it until its end).
    in_flight = {"run_id": "in-flight", "as_of": "2025-01-24", "market_id": "US_EQ",
                 "limit": 40, "window_days": 21, "model_ids": ["num-stab-core-v1"],
                 "run_in_flight": True}
    with scratch_db.dbt_runner() as dbt:
        dbt.invoke(["run", "--select", "numeric_windows"], in_flight)
    with scratch_db.connect() as holder:
        holder.execute(queries.RUN_IN_FLIGHT_LOCK, (queries.LOCK_NAMESPACE, "in-flight"))
        newer = scratch_db.backfill(*RANGE)
        assert newer.returncode == 0, newer.stderr
        assert staged(scratch_db)["in-flight"] == 40  # superseded, but still in flight
        # Staged again with --skip-existing: the keys newer stored are listed, not staged.
        with scratch_db.dbt_runner() as dbt:
            dbt.invoke(["run", "--select", "int_windows_already_stored", "numeric_windows"],
                       {**in_flight, "skip_existing_model_ids": ["num-stab-core-v1"]})
        stored = scratch_db.value(
            "select count(*) from analytics.numeric_windows where run_id = %s"
            " and as_of_date = '2025-01-24' and window_status = 'ok'",
            (newer.summary()["run_id"],))
        assert 0 < stored < 40
        assert listed(scratch_db) == {"in-flight": stored}
        assert staged(scratch_db)["in-flight"] == 40 - stored
        finished = scratch_db.backfill(*RANGE)  # another run finishes: in flight rows stay
        assert finished.returncode == 0, finished.stderr
        assert listed(scratch_db) == {"in-flight": stored}
    # It ended (crashed: lock released, never finished); the next finished run supersedes it.
    again = scratch_db.backfill(*RANGE)
    assert again.returncode == 0, again.stderr
    assert staged(scratch_db) == {again.summary()["run_id"]: 40 * 13}
    assert listed(scratch_db) == {}


def test_rows_for_other_models_are_not_superseded(scratch_db: Database) -> None:
    one = scratch_db.backfill(*RANGE)
    other = scratch_db.backfill(*RANGE[:-3], "--model-id", "num-regime-core-v1", "--no-tests")
    both = scratch_db.backfill(*RANGE[:-3], "--model-id", "num-regime-core-v1",
                               "--model-id", "num-stab-core-v1", "--no-tests")
    for result in (one, other, both):
        assert result.returncode == 0, result.stderr
    # `other` staged num-regime-core-v1 only: it left num-stab-core-v1's rows of `one`;
    # `both` staged both models, so it supersedes both runs' rows.
    assert staged(scratch_db) == {both.summary()["run_id"]: 40 * 13}


def test_plain_dbt_run_stages_the_latest_day_and_dbt_test_warns(scratch_db: Database) -> None:
    with scratch_db.connect() as conn:
        latest = conn.execute("select max(trade_date) from prices_daily"
                              " where close > 0 and volume >= 0").fetchone()[0]
        active = conn.execute("select count(*) from instruments where asset_class = 'EQUITY'"
                              " and status = 'ACTIVE'").fetchone()[0]
        markets = conn.execute("select count(distinct market_id) from instruments"
                               " where asset_class = 'EQUITY'").fetchone()[0]
    assert markets >= 2
    ran = scratch_db.dbt("run")
    assert ran.returncode == 0, ran.error
    with scratch_db.connect() as conn:
        rows = conn.execute("select count(*), count(distinct market_id), min(as_of_date),"
                            " max(as_of_date), count(*) filter (where window_status = 'ok')"
                            " from analytics.numeric_windows").fetchone()
    assert rows[:4] == (active, markets, latest, latest)
    waiting = rows[4]
    tested = scratch_db.dbt("test")
    assert tested.returncode == 0, tested.error  # waiting windows warn, they do not fail
    assert tested.node("staged_windows_waiting_for_the_python_step") == ("warn", waiting)
    assert any(f"{waiting} staged windows wait for the Python step" in line
               and "python -m prometheus.scripts.backfill_numeric_embeddings --as-of "
               f"{latest.isoformat()}" in line for line in tested.logs), tested.logs
    # `dbt build` does the same in one command: seed, staging, tests (the warning again).
    built = scratch_db.dbt("build")
    assert built.returncode == 0, built.error
    assert built.node("staged_windows_waiting_for_the_python_step")[0] == "warn"


def test_a_run_whose_checks_fail_is_not_finished(scratch_db: Database) -> None:
    checked = [arg for arg in RANGE if arg != "--no-tests"]  # finished after its checks
    first = scratch_db.backfill(*checked)
    assert first.returncode == 0, first.stderr
    # Another writer shortens one vector as it is stored: the next run's checks fail.
    with scratch_db.connect() as conn:
        conn.execute("""
            create function shorten_one_vector() returns trigger language plpgsql as $$
            begin
                if new.entity_id = 'US_EQ_0001' and new.as_of_date = '2025-01-24' then
                    new.vector := substring(new.vector from 5);
                end if;
                return new;
            end $$;
            create trigger shorten_one_vector before insert or update
                on numeric_window_embeddings for each row execute function shorten_one_vector();
        """)
    failed = scratch_db.backfill(*checked)
    assert failed.returncode == 1
    assert re.search(r"failed: vector_length_matches_model\S* \(1 failing rows\)$",
                     failed.stderr, re.MULTILINE), failed.stderr
    # Not finished: what numeric_windows says of the first run's windows stays, and so do
    # the failed run's rows.
    failed_run = re.search(r"run (\S+): staging windows", failed.stderr)
    assert failed_run, failed.stderr
    assert staged(scratch_db) == {first.summary()["run_id"]: 40 * 13,
                                  failed_run[1]: 40 * 13}
