"""A run staged in parts when something goes wrong between parts: a part's dbt run fails, or
the selection changes. In-process (cli.main), so dbt can be made to fail at one part."""

from __future__ import annotations

from typing import Any

import pytest

from prometheus.numeric import cli
from prometheus.numeric.dbt_runner import DbtFailure, DbtRunner

from conftest import Database

ARGS = ["--start-date", "2025-01-06", "--end-date", "2025-01-17", "--market-id", "US_EQ",
        "--limit", "9", "--offset", "300", "--window-days", "20",
        "--model-id", "num-regime-core-v1", "--stage-parts", "3"]


@pytest.fixture
def in_process(demo_db_in_process: Database) -> Database:
    return demo_db_in_process


def on_part(monkeypatch: pytest.MonkeyPatch, part: int, action: Any) -> None:
    """Call action() when dbt is about to stage part `part` (0-based) of a run."""
    invoke = DbtRunner.invoke

    def invoke_with_action(self: DbtRunner, command: list[str],
                           dbt_vars: dict[str, Any] | None = None) -> Any:
        if (dbt_vars or {}).get("stage_part_index") == part:
            action()
        return invoke(self, command, dbt_vars)

    monkeypatch.setattr(DbtRunner, "invoke", invoke_with_action)


def latest_run(db: Database) -> str:
    return str(db.value("select run_id from analytics.numeric_windows"
                        " order by staged_at desc limit 1"))


def stored_by(db: Database, run_id: str) -> int:
    return int(db.value("select count(*) from numeric_window_embeddings"
                        " where window_spec ->> 'run_id' = %s", (run_id,)))


def test_a_failed_part_stops_the_run_and_keeps_the_parts_before(
        in_process: Database, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise DbtFailure("dbt run failed: part 2 could not be staged")

    on_part(monkeypatch, 1, fail)
    assert cli.main(ARGS) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "backfill_numeric_embeddings: error: dbt run failed: part 2 could not be staged")
    assert "Traceback" not in err
    run_id = latest_run(in_process)
    # Part 0 (3 of the 9 instruments) was encoded and committed; nothing of parts 1 and 2.
    with in_process.connect() as conn:
        staged = conn.execute(
            "select count(distinct instrument_id), count(*) filter (where window_status = 'ok')"
            " from analytics.numeric_windows where run_id = %s", (run_id,)).fetchone()
    assert staged is not None and staged[0] == 3
    assert stored_by(in_process, run_id) == staged[1] > 0


def test_a_selection_changed_between_parts_is_reported_not_hidden(
        in_process: Database, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Part 0 staged ranks 1-3 (US_EQ_0301..0303). An instrument listed before part 1 sorts
    # into that page, so every later instrument moves down a rank and part 1 (ranks 4-6)
    # stages US_EQ_0303 a second time.
    def list_one() -> None:
        with in_process.connect() as conn:
            conn.execute("insert into instruments (instrument_id, market_id, asset_class,"
                         " status) values ('US_EQ_0301A', 'US_EQ', 'EQUITY', 'ACTIVE')")

    on_part(monkeypatch, 1, list_one)
    try:
        assert cli.main(ARGS) == 1
    finally:
        with in_process.connect() as conn:
            conn.execute("delete from instruments where instrument_id = 'US_EQ_0301A'")
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "backfill_numeric_embeddings: error: the selected instruments or as-of dates changed"
        " while the run was staged in parts; the vectors stored are right, re-run with"
        " --skip-existing to complete")
    with in_process.connect() as conn:
        ranks = conn.execute(
            "select array_agg(distinct selection_rank order by selection_rank)"
            " from analytics.numeric_windows where run_id = %s and instrument_id = 'US_EQ_0303'",
            (latest_run(in_process),)).fetchone()
    assert ranks is not None and ranks[0] == [3, 4]
