"""DbtRunner against the project's PostgreSQL: one runner, several runs of the models that
read ephemeral models (dbt compiles into the manifest it is given)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prometheus.numeric.dbt_runner import DbtRunner

from conftest import PROJECT_DIR, Database


def _windows(db: Database, run_id: str) -> int:
    with db.connect() as conn:
        row = conn.execute("select count(*) from analytics.numeric_windows where run_id = %s",
                           (run_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_one_runner_stages_windows_twice(demo_db: Database, original_run,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # dbt reads the libpq and DBT_ variables of this process: exactly the database's.
    for name in list(os.environ):
        if name.startswith(("PG", "DBT_")) and name not in demo_db.env:
            monkeypatch.delenv(name)
    for name, value in demo_db.env.items():
        if name.startswith(("PG", "DBT_")):
            monkeypatch.setenv(name, value)
    runner = DbtRunner(PROJECT_DIR, Path(demo_db.env["DBT_PROFILES_DIR"]))
    for run_id in ("runner-twice-1", "runner-twice-2"):
        runner.invoke(["run", "--select", "numeric_windows"],
                      {"run_id": run_id, "as_of": "2025-01-31", "market_id": "US_EQ",
                       "limit": 7})
        assert _windows(demo_db, run_id) == 7
