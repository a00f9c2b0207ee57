"""Where the project is found, and the demo market's size: checks that need no dbt run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prometheus.numeric.errors import PipelineError, UsageError
from prometheus.numeric.project import find_project_dir

from conftest import PROJECT_DIR, Database
from fresh_stack import run_main


def test_a_project_folder_named_explicitly_is_used_or_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unreadable = tmp_path / "latin1"
    unreadable.mkdir()
    (unreadable / "dbt_project.yml").write_bytes(b"name: prometheus_numeric # caf\xe9\n")
    with pytest.raises(UsageError, match="is not the prometheus_numeric dbt project"):
        find_project_dir(unreadable)
    assert find_project_dir(Path(os.path.relpath(PROJECT_DIR))) == PROJECT_DIR
    monkeypatch.setenv("PROMETHEUS_PROJECT_DIR", str(tmp_path))
    with pytest.raises(PipelineError, match=f"PROMETHEUS_PROJECT_DIR={tmp_path} is not") as exc:
        find_project_dir()
    assert exc.value.exit_code == 1
    assert find_project_dir(PROJECT_DIR) == PROJECT_DIR  # the flag comes first


@pytest.mark.parametrize(("args", "words"), [
    (["--instruments", "40"], ["--instruments", "at least 401, got 40"]),
    (["--instruments", "4O1"], ["--instruments", "not a whole number: '4O1'"]),
    (["--start-date", "2025-03-01", "--end-date", "2025-01-01"],
     ["--start-date 2025-03-01 is after --end-date 2025-01-01"]),
    # Two months of days: too few for the invalid rows planted up to 70 days back.
    (["--start-date", "2024-12-01"], ["--start-date 2024-12-01", "too few trading days"]),
])
def test_demo_data_refuses_a_market_too_small_for_its_special_cases(
        empty_db: Database, args: list[str], words: list[str]) -> None:
    from prometheus.numeric import demo_data

    with empty_db.environment():
        result = run_main(demo_data.main, ["load", *args])
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()  # one line, no usage block, no traceback
    assert line.startswith("prometheus-demo-data") and ": error: " in line, line
    for word in words:
        assert word in line, line
    # Nothing half-written: the source tables are created in the load's transaction only.
    assert empty_db.value("select to_regclass('prices_daily') is null")
