"""Bad input, faults and concurrency: clear errors, nothing lost, nothing half-written."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import PROJECT_DIR, Database, failure_text
from fresh_stack import assert_one_line_error
from reference import assert_vector_matches, reference_vector, reference_window

BASE = ["--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit", "5"]


def table_counts(db: Database) -> tuple[int, int]:
    with db.connect() as conn:
        embeddings = conn.execute("select count(*) from numeric_window_embeddings").fetchone()
        prices = conn.execute("select count(*) from prices_daily").fetchone()
    return int(embeddings[0]), int(prices[0])  # type: ignore[index]


@pytest.mark.parametrize(("args", "words"), [
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--window-days", "0"],
     ["--window-days", "from 1 to 500,000", "got 0"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--window-days", "129",
      "--model-id", "num-stab-core-v1"], ["387 values", "384", "--window-days <= 128"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--model-id", "num-nope-v9"],
     ["unknown --model-id 'num-nope-v9'", "num-stab-core-v1", "numeric-simple-v1"]),
    (["--as-of", "2025-02-30", "--market-id", "US_EQ"], ["--as-of", "2025-02-30"]),
    (["--start-date", "2025-01-31", "--end-date", "2025-01-01", "--market-id", "US_EQ"],
     ["--start-date 2025-01-31 is after --end-date 2025-01-01"]),
    (["--as-of", "2025-01-31"], ["--market-id or --instrument-id"]),
    (["--market-id", "US_EQ"], ["--as-of"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit", "-1"], ["--limit"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--offset", "-3"], ["--offset"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--model-id",
      "x'; drop table prices_daily; --"], ["unknown --model-id"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--bogus"], ["--bogus"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--stage-parts", "0"],
     ["--stage-parts", ">= 1"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--batch-size", "1000001"],
     ["--batch-size", "from 1 to 1,000,000", "1000001"]),
    (["--as-of", "2025-01-31", "--market-id", "US_EQ", "--window-days", "1000000",
      "--model-id", "numeric-simple-v1"], ["--window-days", "from 1 to 500,000", "1000000"]),
    # A folder named explicitly is refused, not passed over for the project found from here.
    (["--as-of", "2025-01-31", "--market-id", "US_EQ",
      "--project-dir", str(PROJECT_DIR / "models")],
     [f"--project-dir {PROJECT_DIR / 'models'} is not the prometheus_numeric dbt project"]),
])
def test_bad_arguments_exit_2_before_anything_is_written(
        demo_db: Database, original_run, args: list[str], words: list[str]) -> None:
    before = table_counts(demo_db)
    result = demo_db.backfill(*args)
    assert_one_line_error(result, 2, *words)
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert table_counts(demo_db) == before


def test_a_usage_error_exits_before_dbt_is_imported(demo_db: Database) -> None:
    """The process is what is tested: it must not pay dbt's import to say a flag is wrong."""
    check = ("import sys; from prometheus.numeric import cli; code = cli.main(sys.argv[1:]);"
             " print(sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')));"
             " sys.exit(code)")
    result = subprocess.run(
        [sys.executable, "-c", check, "--as-of", "2025-01-31", "--market-id", "US_EQ",
         "--model-id", "num-nope-v9"],
        cwd=PROJECT_DIR, env=demo_db.env, capture_output=True, text=True, timeout=60)
    assert_one_line_error(result, 2, "unknown --model-id 'num-nope-v9'")
    assert result.stdout.strip() == "[]"


def test_the_longest_lookback_from_year_1_is_a_run_not_a_crash(demo_db: Database) -> None:
    # 1,500,000 days before 0001-01-01: dates Python has none for, PostgreSQL has.
    result = demo_db.backfill("--as-of", "0001-01-01", "--window-days", "500000",
                              "--market-id", "US_EQ", "--limit", "5",
                              "--model-id", "numeric-simple-v1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert " insufficient_history=5 " in result.stdout


def test_hostile_strings_are_data(demo_db: Database, original_run) -> None:
    before = table_counts(demo_db)
    hostile = "US_EQ'; drop table prices_daily; --"
    result = demo_db.backfill("--as-of", "2025-01-31", "--market-id", hostile)
    assert_one_line_error(result, 1, "nothing selected", "drop table prices_daily")
    assert table_counts(demo_db) == before
    # A quoted instrument id, and one outside Unicode's first plane (JSON would escape it as a
    # surrogate pair, which dbt's YAML reader of --vars refuses), are looked up as they are:
    # no such instruments, so they are skipped.
    result = demo_db.backfill(*BASE, "--instrument-id", "O'Brien /* */ ; --",
                              "--instrument-id", "US_EQ_\U0001D11E",
                              "--model-id", "num-regime-core-v1", "--window-days", "10")
    assert result.returncode == 0, result.stderr
    assert "embedded=5 skipped=2 " in result.stdout


BAD_VARS = [
    ({"as_of": "2025-13-01", "market_id": "US_EQ"}, "var 'as_of'"),
    ({"as_of": "2025-01-31", "market_id": "US_EQ", "window_days": 0}, "var 'window_days'"),
    ({"as_of": "2025-01-31", "market_id": "US_EQ", "window_days": 500001}, "var 'window_days'"),
    ({"as_of": "2025-01-31", "market_id": "US_EQ", "limit": -2}, "var 'limit'"),
    ({"as_of": "2025-01-31", "market_id": "US_EQ", "min_days": 70}, "var 'min_days'"),
    ({"as_of": "2025-01-31", "instrument_ids": ["US_EQ_0001", ""]}, "var 'instrument_ids'"),
    ({"start_date": "2025-02-01", "end_date": "2025-01-01", "market_id": "US_EQ"},
     "var 'start_date'"),
    ({"start_date": "2025-01-01", "market_id": "US_EQ"}, "var 'end_date'"),
    ({"as_of": "2025-01-31", "start_date": "2025-01-01", "end_date": "2025-01-31"},
     "var 'as_of'"),
    ({"as_of": "2025-01-31", "market_id": "US_EQ", "frequency": "hourly"}, "var 'frequency'"),
    ({"as_of": "2025-01-31", "shard_index": 2, "shard_count": 2}, "var 'shard_index'"),
    ({"as_of": "2025-01-31", "stage_part_index": 3, "stage_part_count": 3},
     "var 'stage_part_index'"),
]


def test_bad_dbt_vars_fail_the_run_naming_the_var(demo_db: Database) -> None:
    """One parse, then one invocation per bad set of vars (dbt re-parses when the vars on its
    command line change, so they go to the parsed project instead)."""
    before = demo_db.value("select count(*) from analytics.numeric_windows")
    with demo_db.dbt_runner() as dbt:
        for dbt_vars, var_name in BAD_VARS:
            result = dbt.invoke(["run", "--select", "numeric_windows"], dbt_vars, check=False)
            assert not result.success, dbt_vars
            assert var_name in failure_text(result), (dbt_vars, failure_text(result))
    assert demo_db.value("select count(*) from analytics.numeric_windows") == before


def _backfill_process(db: Database, *args: str) -> subprocess.Popen[str]:
    """The command as a process, running while the test acts on it."""
    return subprocess.Popen(
        [sys.executable, "-m", "prometheus.scripts.backfill_numeric_embeddings", *args],
        cwd=PROJECT_DIR, env=db.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _wait_for_stored(process: subprocess.Popen[str]) -> list[str]:
    lines: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if re.search(r"stored \d+ of \d+ vectors", line):  # a batch committed
            return lines
    raise AssertionError("the run ended before storing a batch: " + "".join(lines))


# December 2024: other tests' coverage checks of January 2025 count their models' windows.
RANGE_RUN = ["--start-date", "2024-12-02", "--end-date", "2024-12-31", "--market-id",
             "US_EQ", "--limit", "100", "--offset", "200", "--window-days", "21",
             "--batch-size", "100"]


def stored_keys(db: Database, model_id: str, run_id: str | None = None
                ) -> dict[tuple[str, dt.date], bytes]:
    """The model's vectors (written last by run_id, when given)."""
    with db.connect() as conn:
        rows = conn.execute(
            "select entity_id, as_of_date, vector from numeric_window_embeddings"
            " where model_id = %s and (%s::text is null or window_spec ->> 'run_id' = %s)",
            (model_id, run_id, run_id)).fetchall()
    return {(r[0], r[1]): bytes(r[2]) for r in rows}


def test_sigkill_keeps_whole_batches_and_a_rerun_completes(demo_db: Database) -> None:
    model = "num-scenario-core-v1"
    process = _backfill_process(demo_db, *RANGE_RUN, "--model-id", model)
    lines = _wait_for_stored(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_run = lines[0].split("run ")[1].split(":")[0]
    partial = stored_keys(demo_db, model, killed_run)
    assert partial, "nothing was kept"
    assert all(len(v) == 1536 for v in partial.values())
    # Batches are groups of whole instruments (100 windows at most): each one complete.
    per_instrument: dict[str, int] = {}
    for instrument_id, _ in partial:
        per_instrument[instrument_id] = per_instrument.get(instrument_id, 0) + 1
    assert len(set(per_instrument.values())) == 1, per_instrument

    rerun = demo_db.backfill(*RANGE_RUN, "--model-id", model)
    assert rerun.returncode == 0, rerun.stderr
    complete = stored_keys(demo_db, model, rerun.summary()["run_id"])
    assert len(complete) == int(rerun.summary()["embedded"])
    assert len(complete) > len(partial)
    for key, vector in partial.items():
        assert complete[key] == vector
    with demo_db.connect() as conn:
        for instrument_id, as_of in list(complete)[::97]:
            window = reference_window(conn, instrument_id, as_of, 21)
            assert window is not None
            assert_vector_matches(complete[(instrument_id, as_of)],
                                  reference_vector(window, 384), 21, instrument_id)


def test_database_going_away_mid_run(demo_db: Database) -> None:
    """The server processes serving the run end (as in a crash or a restart of the server):
    exit 1 with one line, whole batches kept, and a re-run completes. Only this database's
    connections are ended, so the tests running beside this one are not disturbed."""
    model = "num-portfolio-core-v1"
    process = _backfill_process(demo_db, *RANGE_RUN, "--model-id", model)
    _wait_for_stored(process)
    with demo_db.connect() as conn:
        ended = conn.execute(
            "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()").fetchone()
    stdout, stderr = process.communicate(timeout=120)
    assert ended is not None and ended[0] >= 1
    assert_one_line_error(subprocess.CompletedProcess(process.args, process.returncode,
                                                      stdout, stderr), 1)
    rerun = demo_db.backfill(*RANGE_RUN, "--model-id", model)
    assert rerun.returncode == 0, rerun.stderr
    assert len(stored_keys(demo_db, model, rerun.summary()["run_id"])) == int(
        rerun.summary()["embedded"])


def test_concurrent_runs_never_duplicate_or_mix(demo_db: Database) -> None:
    model = "num-profile-core-v1"
    same = ["--as-of", "2025-01-29", "--market-id", "US_EQ", "--limit", "60",
            "--model-id", model]
    other = ["--as-of", "2025-01-28", "--market-id", "US_EQ", "--limit", "40",
             "--offset", "300", "--model-id", model]
    processes = [_backfill_process(demo_db, *args) for args in (same, same, other)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    stored = stored_keys(demo_db, model)
    first = {k for k in stored if k[1] == dt.date(2025, 1, 29)}
    second = {k for k in stored if k[1] == dt.date(2025, 1, 28)}
    assert {k[0] for k in first} == {f"US_EQ_{i:04d}" for i in range(1, 61)} - {
        "US_EQ_0021"}  # listed 2025-01-06: too short for a 63-day window
    assert {k[0] for k in second} == {f"US_EQ_{i:04d}" for i in range(301, 341)}
    with demo_db.connect() as conn:
        duplicates = conn.execute(
            "select count(*) from (select 1 from numeric_window_embeddings group by"
            " entity_type, entity_id, as_of_date, model_id having count(*) > 1) d").fetchone()
    assert duplicates == (0,)


def test_the_registry_snapshot_is_taken_by_one_invocation_at_a_time(demo_db: Database
                                                                    ) -> None:
    """dbt's on-run-end hook (record_model_changes) replaces the registry snapshot. Another
    invocation's hook holds it here, uncommitted: this one waits for it, then succeeds (two
    runs' hooks used to delete-and-insert the same keys at once: a duplicate key error)."""
    deployed = "numeric_embedding_models_deployed"
    with demo_db.connect() as other, concurrent.futures.ThreadPoolExecutor(1) as pool:
        with other.transaction():
            other.execute("select pg_advisory_xact_lock("
                          "hashtext('prometheus_numeric.record_model_changes'))")
            other.execute(f"delete from {deployed}")
            other.execute(f"insert into {deployed} (model_id, encoder, dim)"
                          " select model_id, encoder, dim from analytics.numeric_embedding_models")
            invocation = pool.submit(demo_db.dbt, "test", "--select", "numeric_windows_stale")
            deadline = time.monotonic() + 120
            while not demo_db.value("select count(*) from pg_stat_activity where"
                                    " wait_event_type = 'Lock' and datname = current_database()"
                                    " and pid <> %s", (other.info.backend_pid,)):
                assert time.monotonic() < deadline and not invocation.done(), "never waited"
                time.sleep(0.1)
        result = invocation.result(timeout=120)
    assert result.returncode == 0, result.error


def test_concurrent_reruns_with_models_in_either_order_do_not_deadlock(
        demo_db: Database) -> None:
    """Re-runs upsert stored keys under one lock per model; two runs naming the same models
    in opposite orders take those locks in one order, batch after small batch."""
    models = ["num-profile-core-v1", "num-regime-core-v1"]  # a date no other test reads
    args = ["--as-of", "2024-11-14", "--market-id", "US_EQ", "--limit", "80", "--offset", "200",
            "--batch-size", "1", "--no-tests"]
    first = demo_db.backfill(*args, *[a for m in models for a in ("--model-id", m)])
    assert first.returncode == 0, first.stderr
    orders = (models, models[::-1])
    processes = [_backfill_process(demo_db, *args, *[a for m in order for a in ("--model-id", m)])
                 for order in orders]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert " vectors=160 " in stdout  # every key replaced, none lost
    for model in models:
        assert len({k for k in stored_keys(demo_db, model) if k[1] == dt.date(2024, 11, 14)}) == 80
