"""The embedding_coverage mart on the demo market: its counts, and the latest run winning."""

from __future__ import annotations

import datetime as dt
from typing import Any

from conftest import Database

AS_OF = dt.date(2025, 1, 31)


def coverage(db: Database, model_id: str, as_of: dt.date) -> dict[str, Any]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("select * from analytics.embedding_coverage"
                    " where model_id = %s and as_of_date = %s", (model_id, as_of))
        rows = cur.fetchall()
        assert cur.description is not None
        names = [column.name for column in cur.description]
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def test_coverage_of_the_original_command(demo_db: Database, original_run) -> None:
    row = coverage(demo_db, "num-stab-core-v1", AS_OF)
    summary = original_run.summary()
    assert row["instruments_selected"] == int(summary["instruments"]) == 500
    assert row["instruments_embedded"] == int(summary["embedded"]) == 496
    assert row["instruments_skipped"] == row["skipped_insufficient_history"] == 4
    assert row["rejected_price_rows"] == int(summary["rejected_rows"]) == 13
    assert row["windows_stale"] == int(summary["stale"]) == 1
    assert row["windows_filled"] == int(summary["filled"]) == 3
    assert row["windows_missing_vector"] == 0
    assert row["vectors_stored"] == 496
    assert (row["min_bytes"], row["max_bytes"]) == (1536, 1536)
    tested = demo_db.dbt("test", "--select", "embedding_coverage")
    assert tested.returncode == 0, tested.stdout[-3000:]


def test_latest_run_wins(demo_db: Database) -> None:
    model = ["--as-of", AS_OF.isoformat(), "--model-id", "num-portfolio-core-v1"]
    first = demo_db.backfill(*model, "--instrument-id", "US_EQ_0001",
                             "--instrument-id", "US_EQ_0011")
    assert first.returncode == 0, first.stderr
    row = coverage(demo_db, "num-portfolio-core-v1", AS_OF)
    assert (row["runs"], row["instruments_embedded"], row["windows_filled"]) == (1, 2, 1)

    # US_EQ_0011 has 61 of 63 rows: with --min-days 63 the second run skips it.
    second = demo_db.backfill(*model, "--instrument-id", "US_EQ_0011", "--min-days", "63")
    assert second.returncode == 0, second.stderr
    row = coverage(demo_db, "num-portfolio-core-v1", AS_OF)
    assert row["runs"] == 2
    assert row["instruments_selected"] == 2
    assert row["instruments_embedded"] == 1  # US_EQ_0001, from the first run
    assert row["instruments_skipped"] == row["skipped_insufficient_history"] == 1
    assert row["windows_filled"] == 0
    assert row["vectors_stored"] == 2  # the first run's vector of US_EQ_0011 is still stored
