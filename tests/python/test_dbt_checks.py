"""dbt's checks of the stored vectors: they pass on a good run, warn of rejected prices and
stale windows, and fail a vector of the wrong length or holding NaN/inf, never a finite one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Database


def test_dbt_tests_pass_then_fail_on_a_wrong_length_vector(demo_db: Database,
                                                          original_run) -> None:
    passed = demo_db.dbt("test")
    assert passed.returncode == 0, passed.error
    # Rejected rows and stale windows are reported as warnings, not hidden, not errors.
    assert passed.node("rejected_prices_present") == ("warn", 13)
    assert passed.node("numeric_windows_stale")[0] == "warn"
    with demo_db.connect() as conn:
        embedding_id, vector = conn.execute(
            "select embedding_id, vector from numeric_window_embeddings"
            " where model_id = 'num-stab-core-v1' limit 1").fetchone()
        conn.execute("update numeric_window_embeddings set vector = substring(vector from 5)"
                     " where embedding_id = %s", (embedding_id,))
    try:
        failed = demo_db.dbt("test", "--select", "stg_embeddings__numeric_window_embeddings")
        assert failed.returncode == 1
        assert failed.node("vector_length_matches_model") == ("fail", 1)
    finally:
        with demo_db.connect() as conn:
            conn.execute("update numeric_window_embeddings set vector = %s"
                         " where embedding_id = %s", (vector, embedding_id))


def test_dbt_test_fails_on_a_nan_or_inf_value(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn:
        embedding_id, vector = conn.execute(
            "select embedding_id, vector from numeric_window_embeddings"
            " where model_id = 'num-stab-core-v1' order by embedding_id limit 1").fetchone()
    for bad_value in (np.nan, np.inf, -np.inf):
        values = np.frombuffer(vector, "<f4").copy()
        values[100] = bad_value
        with demo_db.connect() as conn:
            conn.execute("update numeric_window_embeddings set vector = %s"
                         " where embedding_id = %s", (values.tobytes(), embedding_id))
        try:
            failed = demo_db.dbt("test", "--select", "test_name:vector_values_finite")
            assert failed.returncode == 1, f"{bad_value} not caught"
            assert failed.node("vector_values_finite") == ("fail", 1)
        finally:
            with demo_db.connect() as conn:
                conn.execute("update numeric_window_embeddings set vector = %s"
                             " where embedding_id = %s", (vector, embedding_id))
    assert demo_db.dbt("test", "--select", "test_name:vector_values_finite").returncode == 0


@pytest.mark.parametrize("largest", [3.4028234663852886e38, 1.0e-45])
def test_finite_check_accepts_extreme_finite_values(demo_db: Database, original_run,
                                                    largest: float) -> None:
    """FLT_MAX and subnormals are finite: the check must not flag them."""
    with demo_db.connect() as conn:
        embedding_id, vector = conn.execute(
            "select embedding_id, vector from numeric_window_embeddings"
            " where model_id = 'num-stab-core-v1' order by embedding_id limit 1").fetchone()
        values = np.frombuffer(vector, "<f4").copy()
        values[:4] = [largest, -largest, np.float32(largest), 0]
        conn.execute("update numeric_window_embeddings set vector = %s where embedding_id = %s",
                     (values.tobytes(), embedding_id))
    try:
        assert demo_db.dbt("test", "--select", "test_name:vector_values_finite").returncode == 0
    finally:
        with demo_db.connect() as conn:
            conn.execute("update numeric_window_embeddings set vector = %s"
                         " where embedding_id = %s", (vector, embedding_id))
