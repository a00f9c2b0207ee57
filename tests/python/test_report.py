"""The coverage report PNG, drawn from a real backfill over a date range of the demo market."""

from __future__ import annotations

import re
import struct
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from conftest import CliResult, Database
from fresh_stack import run_main

image = pytest.importorskip("matplotlib.image", reason="the report extra is not installed")

MODEL = "num-scenario-core-v1"
RANGE = ("--start-date", "2025-01-02", "--end-date", "2025-01-31")


def report(db: Database, *args: str) -> CliResult:
    """`python -m prometheus.numeric.report <args>`, in this process."""
    from prometheus.numeric import report as report_module

    with db.environment():
        return run_main(report_module.main, args)


def test_report_png_from_a_date_range(demo_db: Database, tmp_path: Path,
                                     has_pgvector: bool) -> None:
    backfill = demo_db.backfill(*RANGE, "--market-id", "US_EQ", "--limit", "25",
                                "--model-id", MODEL)
    assert backfill.returncode == 0, backfill.stderr
    output = tmp_path / "nested" / "coverage.png"
    result = report(demo_db, "--model-id", MODEL, *RANGE, "--instrument-id", "US_EQ_0011",
                    "--output", str(output))
    assert result.returncode == 0, result.stderr
    drawn = dict(re.findall(r"(\w+)=(\S+)", result.stdout))
    # 20 trading days in the demo's January 2025 from the 2nd; 25 instruments each day.
    assert drawn["as_of_dates"] == "20"
    assert int(drawn["embedded"]) + int(drawn["skipped"]) == 25 * 20
    assert int(drawn["skipped"]) > 0  # US_EQ_0021 lacks history all month
    assert (drawn["instrument"], drawn["rows_filled"]) == ("US_EQ_0011", "2")
    with demo_db.connect() as conn:
        row = conn.execute("select sum(instruments_embedded) from analytics.embedding_coverage"
                           " where model_id = %s and as_of_date between %s and %s",
                           (MODEL, RANGE[1], RANGE[3])).fetchone()
    assert row is not None and int(row[0]) == int(drawn["embedded"])

    data = output.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1100, 1200)
    assert 30_000 < len(data) < 3_000_000
    pixels = image.imread(output)
    assert pixels.shape[:2] == (1200, 1100)
    assert float(np.std(pixels[..., :3])) > 0.05  # drawn, not a blank canvas

    # The second PNG: the window beside its nearest stored window of another instrument
    # (without pgvector, the machine's PostgreSQL, the report says it skips it).
    if not has_pgvector:
        assert "no nearest-window panel" in result.stderr
        assert not output.with_name("coverage-nearest.png").exists()
        return
    nearest = dict(re.findall(r"(\w+)=(\S+)", result.stdout.splitlines()[-1]))
    with demo_db.connect() as conn:
        expected = conn.execute("select entity_id, as_of_date::text, distance from"
                                " similar_windows('US_EQ_0011', %s, %s, 1, true)",
                                (RANGE[3], MODEL)).fetchone()
    assert expected is not None and nearest["nearest"] == expected[0] != "US_EQ_0011"
    assert (nearest["nearest_as_of"], float(nearest["distance"])) == (
        expected[1], pytest.approx(expected[2], abs=1e-6))
    pair = image.imread(output.with_name("coverage-nearest.png"))
    assert pair.shape[:2] == (900, 1200) and float(np.std(pair[..., :3])) > 0.05


def test_report_names_what_is_missing(demo_db: Database, original_run, tmp_path: Path) -> None:
    output = tmp_path / "none.png"
    one_day = ("--start-date", "2025-01-31", "--end-date", "2025-01-31")
    result = report(demo_db, "--model-id", "num-stab-core-v1", *one_day,
                    "--instrument-id", "NO_SUCH", "--output", str(output))
    assert result.returncode == 1
    assert "no stored num-stab-core-v1 vector for instrument NO_SUCH" in result.stderr
    no_range = report(demo_db, "--model-id", "num-stab-core-v1", "--start-date", "2024-06-03",
                      "--end-date", "2024-06-03", "--instrument-id", "US_EQ_0001",
                      "--output", str(output))
    assert no_range.returncode == 1
    assert "run the backfill for that range first" in no_range.stderr
    assert not output.exists()


def test_a_row_another_tool_wrote_is_named_not_drawn(scratch_db: Database,
                                                      tmp_path: Path) -> None:
    one_day = ("--start-date", "2025-01-31", "--end-date", "2025-01-31")
    assert scratch_db.backfill("--as-of", "2025-01-31", "--instrument-id", "US_EQ_0011",
                               "--model-id", MODEL, "--no-tests").returncode == 0
    output = tmp_path / "other.png"
    with scratch_db.connect() as conn:
        spec, vector = conn.execute(
            "select window_spec::text, vector from numeric_window_embeddings").fetchone()
    for other_spec, other_vector in (("{}", vector),  # as the original tool wrote its rows
                                     (spec, vector[:12])):  # a vector too short
        with scratch_db.connect() as conn:
            conn.execute("update numeric_window_embeddings set window_spec = %s::jsonb,"
                         " vector = %s", (other_spec, other_vector))
        result = report(scratch_db, "--model-id", MODEL, *one_day,
                        "--instrument-id", "US_EQ_0011", "--output", str(output))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith(
            f"the stored {MODEL} vector of US_EQ_0011 on 2025-01-31 was not written by this"
            " backfill (no window_days, or a shorter vector): re-run the backfill for that date")
        assert not output.exists()


def test_a_project_dir_that_is_not_the_project_is_a_usage_error(tmp_path: Path) -> None:
    from prometheus.numeric import report as report_module

    result = run_main(report_module.main, ["--model-id", MODEL, *RANGE, "--instrument-id",
                                           "US_EQ_0011", "--project-dir", str(tmp_path)])
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"report: --project-dir {tmp_path} is not the prometheus_numeric"
                             " dbt project (no readable dbt_project.yml naming it)\n")


def test_the_backfill_installs_without_matplotlib() -> None:
    requirements = metadata.requires("prometheus-numeric-embeddings") or []
    matplotlib = [req for req in requirements if req.startswith("matplotlib")]
    assert matplotlib and all("extra == \"report\"" in req for req in matplotlib), matplotlib


def test_without_pgvector_the_nearest_panel_is_skipped(scratch_db: Database, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_PGVECTOR", "off")
    assert scratch_db.backfill("--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit",
                               "20", "--model-id", MODEL, "--no-tests").returncode == 0
    output = tmp_path / "coverage.png"
    result = report(scratch_db, "--model-id", MODEL, "--start-date", "2025-01-31",
                    "--end-date", "2025-01-31", "--instrument-id", "US_EQ_0011",
                    "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "no nearest-window panel: similar_windows: similarity search needs pgvector" \
        in result.stderr
    assert output.exists() and not output.with_name("coverage-nearest.png").exists()
