"""embedding_to_array and embedding_cosine (installed by dbt on run start) against numpy."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest

from conftest import Database


def decode_in_sql(conn: psycopg.Connection, vectors: list[bytes]) -> list[np.ndarray]:
    """embedding_to_array of each vector, read in binary so no value goes through text."""
    with conn.cursor(binary=True) as cur:
        cur.execute("select position, embedding_to_array(vector) from unnest(%s::bytea[])"
                    " with ordinality as given (vector, position) order by position", (vectors,))
        return [np.array(row[1], dtype=np.float32) for row in cur.fetchall()]


def same_bits(decoded: np.ndarray, vector: bytes) -> bool:
    expected = np.frombuffer(vector, dtype="<f4")
    return decoded.shape == expected.shape and bool(
        np.array_equal(decoded.view("<u4"), expected.view("<u4")))


def test_decode_is_bit_exact_on_every_stored_vector(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn, conn.cursor(binary=True) as cur:
        # Other test files on this worker may have stored other models' vectors first, and
        # re-run the original command (another run_id, the same keys).
        cur.execute("select vector, embedding_to_array(vector), model_id = 'num-stab-core-v1'"
                    " and as_of_date = '2025-01-31' and window_spec ->> 'window_days' = '63'"
                    " from numeric_window_embeddings")
        rows = cur.fetchall()
    assert len(rows) >= 496
    mismatched = [i for i, (vector, decoded, _) in enumerate(rows)
                  if not same_bits(np.array(decoded, dtype=np.float32), bytes(vector))]
    assert mismatched == []
    # Real data: closes and volumes are non-zero, the 384-dim padding is zeros.
    first = next((np.array(decoded, dtype=np.float32) for _, decoded, original in rows
                  if original), None)
    assert first is not None, "no vector of the original command"
    assert first.shape == (384,) and first[0] > 0 and np.all(first[189:] == 0)


def edge_values() -> np.ndarray:
    specials = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38,
                         3.4028235e38, -3.4028235e38, 9.87654321e12, 123456789.0, 0.1,
                         np.inf, -np.inf], dtype=np.float32)
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32)
    words = np.concatenate([words, np.arange(0, 4096, dtype=np.uint32),  # subnormals
                            np.arange(0x80000000, 0x80001000, dtype=np.uint32)])
    random_values = words.view(np.float32)
    return np.concatenate([specials, random_values[~np.isnan(random_values)]])


def test_decode_is_bit_exact_on_crafted_values(demo_db: Database) -> None:
    values = edge_values()
    chunks = [values[i:i + 384].astype("<f4").tobytes() for i in range(0, len(values), 384)]
    with demo_db.connect() as conn:
        decoded = decode_in_sql(conn, chunks)
    assert len(decoded) == len(chunks)
    assert all(same_bits(d, c) for d, c in zip(decoded, chunks, strict=True))
    assert np.signbit(decoded[0][1]) and decoded[0][1] == 0  # negative zero survives
    assert decoded[0][4] == np.float32(1e-45) and decoded[0][4] > 0  # smallest subnormal


def test_decode_nan_empty_and_bad_length(demo_db: Database) -> None:
    nan_bytes = np.array([np.nan, 1.5], dtype="<f4").tobytes() + bytes.fromhex("0100807f")
    with demo_db.connect() as conn:
        decoded = decode_in_sql(conn, [nan_bytes, b""])
        assert np.isnan(decoded[0][0]) and decoded[0][1] == 1.5 and np.isnan(decoded[0][2])
        assert decoded[1].shape == (0,)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="7 bytes"):
            conn.execute("select embedding_to_array(%s::bytea)", (b"\x00" * 7,))


def numpy_cosine(left: bytes, right: bytes) -> float:
    a = np.frombuffer(left, dtype="<f4").astype(np.float64)
    b = np.frombuffer(right, dtype="<f4").astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_cosine_matches_numpy_on_stored_vectors(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn:
        rows = conn.execute(
            "select a.vector, b.vector, embedding_cosine(a.vector, b.vector)"
            " from numeric_window_embeddings as a"
            " cross join lateral (select vector from numeric_window_embeddings"
            "   where embedding_id <> a.embedding_id and model_id = a.model_id"
            "   order by embedding_id limit 3) as b"
            " where a.model_id = 'num-stab-core-v1' and a.as_of_date = '2025-01-31'"
        ).fetchall()
    assert len(rows) >= 3 * 496
    errors = [abs(cos - numpy_cosine(bytes(a), bytes(b))) / abs(numpy_cosine(bytes(a), bytes(b)))
              for a, b, cos in rows]
    assert max(errors) <= 1e-12
    assert any(cos < 0.999 for _, _, cos in rows)  # not all trivially parallel


def test_cosine_edge_cases(demo_db: Database) -> None:
    def as_bytes(*values: float) -> bytes:
        return np.array(values, dtype="<f4").tobytes()

    cases = [
        (as_bytes(1, 0), as_bytes(0, 2), 0.0),
        (as_bytes(1, 2, 3), as_bytes(-2, -4, -6), -1.0),
        (as_bytes(3e38, 1), as_bytes(3e38, 1), 1.0),
        (as_bytes(1e-45, 0), as_bytes(2e-45, 0), 1.0),
    ]
    with demo_db.connect() as conn:
        for left, right, expected in cases:
            got = conn.execute("select embedding_cosine(%s, %s)", (left, right)).fetchone()
            assert got is not None and got[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        zero = conn.execute("select embedding_cosine(%s, %s)",
                            (as_bytes(0, 0), as_bytes(1, 1))).fetchone()
        assert zero == (None,)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="different lengths"):
            conn.execute("select embedding_cosine(%s, %s)", (as_bytes(1), as_bytes(1, 2)))


def test_functions_install_idempotently_and_concurrently(empty_db: Database) -> None:
    with empty_db.dbt_runner() as dbt:
        compiled = dbt.invoke(["compile", "--inline", "{{ create_embedding_functions() }}"])
    hook_sql = compiled.result.results[0].node.compiled_code.strip()
    assert hook_sql.startswith("do $ddl$")
    failures: list[BaseException] = []

    def install() -> None:
        try:
            with empty_db.connect() as conn:
                for _ in range(10):
                    conn.execute(hook_sql)
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=install) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with empty_db.connect() as conn:
        row = conn.execute("select embedding_to_array('\\x0000c03f'::bytea)").fetchone()
        count = conn.execute("select count(*) from pg_proc where proname like 'embedding\\_%'"
                             " and pronamespace = 'public'::regnamespace").fetchone()
    assert row == ([1.5],)
    assert count == (3,)
