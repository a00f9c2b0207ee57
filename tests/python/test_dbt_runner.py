"""DbtRunner against the project's PostgreSQL: one runner, several runs of the models that
read ephemeral models (dbt compiles into the manifest it is given)."""

from __future__ import annotations

from conftest import Database


def _windows(db: Database, run_id: str) -> int:
    return int(db.value("select count(*) from analytics.numeric_windows where run_id = %s",
                        (run_id,)))


def test_one_runner_stages_windows_twice(demo_db: Database, original_run) -> None:
    with demo_db.dbt_runner() as runner:
        for run_id in ("runner-twice-1", "runner-twice-2"):
            runner.invoke(["run", "--select", "numeric_windows"],
                          {"run_id": run_id, "as_of": "2025-01-31", "market_id": "US_EQ",
                           "limit": 7, "run_in_flight": True})
            assert _windows(demo_db, run_id) == 7
