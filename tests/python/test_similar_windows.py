"""The pgvector companion (numeric_window_vectors) and similar_windows, against numpy: the
companion holds every stored vector bit for bit on every path that writes or deletes one, and
similar_windows ranks exactly as a numpy cosine over the stored bytes does."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from conftest import Database, database_copy

MODEL = "num-stab-core-v1"
OTHER_MODEL = "num-portfolio-core-v1"
RANGE = ["--start-date", "2025-01-02", "--end-date", "2025-01-31", "--market-id", "US_EQ",
         "--limit", "60", "--window-days", "21", "--no-tests"]


@pytest.fixture(scope="module", autouse=True)
def needs_pgvector(has_pgvector: bool) -> None:
    if not has_pgvector:
        pytest.skip("this PostgreSQL has no pgvector (make test PG_BINDIR=...): similarity "
                    "search is off")


@pytest.fixture(scope="module")
def vectors_db(server_env: dict[str, str], demo_template: Database) -> Iterator[Database]:
    """A range of two models stored with pgvector on (the private server has it)."""
    with database_copy(server_env, "similar", demo_template) as database:
        for model in (MODEL, OTHER_MODEL):
            result = database.backfill(*RANGE, "--model-id", model)
            assert result.returncode == 0, result.stderr
        yield database


def stored_vectors(db: Database, model_id: str) -> tuple[list[tuple[str, dt.date]], np.ndarray]:
    """The stored keys and vectors of a model, from the bytes (not from pgvector)."""
    with db.connect() as conn:
        rows = conn.execute("select entity_id, as_of_date, vector from numeric_window_embeddings"
                            " where model_id = %s", (model_id,)).fetchall()
    keys = [(row[0], row[1]) for row in rows]
    return keys, np.stack([np.frombuffer(row[2], dtype="<f4") for row in rows])


def numpy_nearest(keys: list[tuple[str, dt.date]], vectors: np.ndarray, query: tuple[str, dt.date],
                  k: int, exclude_same_instrument: bool = False, before_as_of_only: bool = False
                  ) -> list[tuple[str, dt.date, float]]:
    """SPEC-independent exact answer: cosine distance in double precision, nearest first,
    ties by entity_id then as_of_date, the query key and all-zero vectors left out."""
    values = vectors.astype(np.float64)
    q = values[keys.index(query)]
    norms = np.linalg.norm(values, axis=1)
    distances = 1 - values @ q / (norms * np.linalg.norm(q))
    ranked = sorted(
        (distance, entity_id, as_of_date)
        for (entity_id, as_of_date), distance, norm in zip(keys, distances, norms, strict=True)
        if (entity_id, as_of_date) != query and norm > 0
        and not (exclude_same_instrument and entity_id == query[0])
        and not (before_as_of_only and as_of_date >= query[1]))
    return [(entity_id, as_of_date, float(distance))
            for distance, entity_id, as_of_date in ranked[:k]]


def similar(db: Database, query: tuple[str, dt.date], model_id: str, k: int, *flags: bool,
            function: str = "similar_windows") -> list[tuple[str, dt.date, float]]:
    placeholders = ", ".join(["%s"] * (4 + len(flags)))
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            f"select * from {function}({placeholders})", (*query, model_id, k, *flags)
        ).fetchall()]


def assert_same_ranking(got: list[tuple[str, dt.date, float]],
                        expected: list[tuple[str, dt.date, float]]) -> None:
    assert [row[:2] for row in got] == [row[:2] for row in expected]
    assert np.allclose([row[2] for row in got], [row[2] for row in expected], rtol=0, atol=1e-6)


def test_similar_windows_is_the_exact_numpy_ranking(vectors_db: Database) -> None:
    keys, vectors = stored_vectors(vectors_db, MODEL)
    assert len(keys) > 1000
    middle = sorted({key[1] for key in keys})[len({key[1] for key in keys}) // 2]
    queries = [next(key for key in keys if key[1] == middle), max(keys, key=lambda key: key[1]),
               ("US_EQ_0011", dt.date(2025, 1, 31))]
    for query in queries:
        for k, flags in ((5, ()), (10, (True,)), (7, (False, True)), (150, (True, True))):
            expected = numpy_nearest(keys, vectors, query, k, *flags)
            got = similar(vectors_db, query, MODEL, k, *flags)
            assert len(got) == k
            assert_same_ranking(got, expected)
            if flags and flags[0]:
                assert all(row[0] != query[0] for row in got)
            if len(flags) > 1 and flags[1]:
                assert all(row[1] < query[1] for row in got)


def test_ties_and_near_ties_stay_exact(vectors_db: Database) -> None:
    """Many windows as close as the k-th (beyond the first k + 100 candidates) are all
    re-ranked in double precision: ties come out by entity_id, then as_of_date."""
    model = "ties-model"
    base = np.linspace(1, 2, 384).astype("<f4")
    # Exact distances 0 (a tie: the same vector) and about 6e-10, 2e-9, 5e-9: closer than
    # pgvector's float32 arithmetic can tell apart, far apart in double precision.
    levels = [base] + [base * np.array([1 + 1e-3 * level] + [1] * 383, dtype="<f4")
                       for level in (1, 2, 3)]
    rows = [(f"T_{i:03d}", dt.date(2025, 1, 2) + dt.timedelta(days=i % 7),
             levels[(i * 7) % 4].tobytes()) for i in range(240)]
    rows.append(("T_QUERY", dt.date(2025, 1, 31), (base * 3).tobytes()))
    with vectors_db.connect() as conn, conn.transaction():
        conn.execute("create temp table given (entity_id text, as_of_date date, vector bytea)")
        with conn.cursor().copy("copy given from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute("""
            insert into numeric_window_embeddings
                (entity_type, entity_id, window_spec, as_of_date, model_id, vector)
            select 'INSTRUMENT', entity_id, '{}', as_of_date, %s, vector from given""", (model,))
        conn.execute("""
            insert into numeric_window_vectors
            select embedding_id, model_id, entity_id, as_of_date,
                embedding_to_array(vector)::vector
            from numeric_window_embeddings where model_id = %s""", (model,))
    keys, vectors = stored_vectors(vectors_db, model)
    query = ("T_QUERY", dt.date(2025, 1, 31))
    for k in (5, 200):
        assert_same_ranking(similar(vectors_db, query, model, k),
                            numpy_nearest(keys, vectors, query, k))


def test_similar_windows_refuses_what_it_cannot_answer(vectors_db: Database) -> None:
    with vectors_db.connect() as conn:
        with pytest.raises(psycopg.errors.NoDataFound,
                           match="no vector is stored for entity_id 'US_EQ_0011', as_of_date "
                                 "2024-01-31, model_id 'num-stab-core-v1'"):
            conn.execute("select * from similar_windows('US_EQ_0011', '2024-01-31', %s, 5)",
                         (MODEL,))
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="k must be a positive"):
            conn.execute("select * from similar_windows('US_EQ_0011', '2025-01-31', %s, 0)",
                         (MODEL,))
        conn.execute("delete from numeric_window_vectors where entity_id = 'US_EQ_0042'"
                     " and as_of_date = '2025-01-31' and model_id = %s", (MODEL,))
        with pytest.raises(psycopg.errors.NoDataFound,
                           match="not in numeric_window_vectors yet: the next backfill run"):
            conn.execute("select * from similar_windows('US_EQ_0042', '2025-01-31', %s, 5)",
                         (MODEL,))
        conn.execute("insert into numeric_window_vectors select embedding_id, model_id,"
                     " entity_id, as_of_date, embedding_to_array(vector)::vector"
                     " from numeric_window_embeddings where entity_id = 'US_EQ_0042'"
                     " and as_of_date = '2025-01-31' and model_id = %s", (MODEL,))


def pgvector_mismatches(db: Database) -> list[int]:
    """embedding_ids whose companion row is missing, extra, on another key, or not the same
    float32 bits as embedding_to_array of the stored bytes."""
    with db.connect() as conn, conn.cursor(binary=True) as cur:
        cur.execute("""
            select stored.embedding_id, vectors.embedding_id is null,
                (stored.model_id, stored.entity_id, stored.as_of_date)
                    is distinct from (vectors.model_id, vectors.entity_id, vectors.as_of_date),
                stored.vector, vectors.embedding::real[]
            from numeric_window_embeddings as stored
            full join numeric_window_vectors as vectors using (embedding_id)""")
        rows = cur.fetchall()
    assert rows
    return [row[0] for row in rows
            if row[1] or row[2] or row[0] is None or not np.array_equal(
                np.frombuffer(row[3], dtype="<f4").view("<u4"),
                np.array(row[4], dtype=np.float32).view("<u4"))]


def test_pgvector_values_follow_every_write(scratch_db: Database) -> None:
    model = ["--model-id", MODEL]
    assert scratch_db.backfill(*RANGE, *model).returncode == 0
    assert pgvector_mismatches(scratch_db) == []
    # A correction, then --skip-existing: refreshed vectors change in both tables.
    with scratch_db.connect() as conn:
        conn.execute("update prices_daily set close = close * 1.1"
                     " where instrument_id = 'US_EQ_0011' and trade_date = '2025-01-15'")
    refreshed = scratch_db.backfill(*RANGE, *model, "--skip-existing")
    assert refreshed.returncode == 0 and int(refreshed.summary()["refreshed"]) > 0
    assert pgvector_mismatches(scratch_db) == []
    # A full re-run replaces every vector (an upsert keeps each embedding_id).
    assert scratch_db.backfill(*RANGE, *model).returncode == 0
    assert pgvector_mismatches(scratch_db) == []
    with scratch_db.connect() as conn:
        # Deleting stored rows (by hand, or the dedupe command) deletes their pgvector values.
        deleted = conn.execute("delete from numeric_window_embeddings"
                               " where entity_id = 'US_EQ_0011'").rowcount
        assert deleted > 0
        # Vectors stored before the companion existed are copied in by the next run; so are
        # vectors another writer rewrites (their stale pgvector value goes at once).
        conn.execute("delete from numeric_window_vectors where entity_id = 'US_EQ_0012'")
        conn.execute("update numeric_window_embeddings set vector = %s"
                     " where entity_id = 'US_EQ_0013'", (np.ones(384, "<f4").tobytes(),))
        assert conn.execute("select count(*) from numeric_window_vectors"
                            " where entity_id = 'US_EQ_0013'").fetchone() == (0,)
        # So do rows whose key another writer changes (the companion copies the key).
        moved = conn.execute("update numeric_window_embeddings set as_of_date ="
                             " as_of_date - 1000 where entity_id = 'US_EQ_0014'"
                             " returning embedding_id").fetchall()
        assert moved and conn.execute(
            "select count(*) from numeric_window_vectors where embedding_id = any(%s)",
            ([row[0] for row in moved],)).fetchone() == (0,)
    again = scratch_db.backfill(*RANGE, *model, "--skip-existing")
    assert again.returncode == 0, again.stderr
    copied = re.search(r"copied (\d+) stored vectors", again.stderr)
    assert copied and int(copied.group(1)) == scratch_db.value(
        "select count(*) from numeric_window_embeddings"
        " where entity_id in ('US_EQ_0012', 'US_EQ_0013')") + len(moved)
    assert pgvector_mismatches(scratch_db) == []
    # A stored vector holding NaN (another writer's) stays out of the companion, with a
    # warning, even when it is the only one missing (the fill's batch then has no finite one).
    with scratch_db.connect() as conn:
        nan_id = conn.execute(
            "update numeric_window_embeddings set vector = %s where embedding_id ="
            " (select min(embedding_id) from numeric_window_embeddings) returning embedding_id",
            (np.full(384, np.nan, "<f4").tobytes(),)).fetchone()[0]
    after_nan = scratch_db.backfill(*RANGE, *model, "--skip-existing")
    assert after_nan.returncode == 0, after_nan.stderr
    assert "1 stored vectors hold NaN or infinity: not copied" in after_nan.stderr
    assert pgvector_mismatches(scratch_db) == [nan_id]


def test_pgvector_switched_off(scratch_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline works without pgvector; similar_windows says what it needs."""
    monkeypatch.setenv("PROMETHEUS_PGVECTOR", "off")
    dry = scratch_db.backfill("--as-of", "2025-01-31", "--market-id", "US_EQ", "--limit", "5",
                              "--model-id", MODEL, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert scratch_db.value("select to_regclass('numeric_window_vectors') is not null")
    result = scratch_db.backfill("--as-of", "2025-01-31", "--market-id", "US_EQ",
                                 "--limit", "50", "--model-id", MODEL)
    assert result.returncode == 0, result.stderr
    assert "similarity search is off" in result.stderr
    assert scratch_db.value("select to_regclass('numeric_window_vectors') is null")
    assert scratch_db.value("select count(*) from numeric_window_embeddings") > 40
    with scratch_db.connect() as conn, pytest.raises(psycopg.errors.FeatureNotSupported,
                                                     match="needs pgvector"):
        conn.execute("select * from similar_windows('US_EQ_0011', '2025-01-31', %s, 5)",
                     (MODEL,))
    monkeypatch.delenv("PROMETHEUS_PGVECTOR")
    back = scratch_db.backfill("--as-of", "2025-01-31", "--market-id", "US_EQ",
                               "--limit", "50", "--model-id", MODEL, "--skip-existing")
    assert back.returncode == 0 and "copied" in back.stderr
    assert pgvector_mismatches(scratch_db) == []


def test_approximate_search_through_hnsw(vectors_db: Database) -> None:
    built = vectors_db.dbt("run-operation", "create_similar_windows_index",
                           "--args", "{dims: 384}")
    assert built.returncode == 0, built.error
    assert vectors_db.value("select count(*) from pg_indexes"
                            " where indexname = 'numeric_window_vectors_hnsw_384'") == 1
    keys, vectors = stored_vectors(vectors_db, MODEL)
    found = exact = 0
    for query in keys[::97]:
        expected = numpy_nearest(keys, vectors, query, 10)
        got = similar(vectors_db, query, MODEL, 10, function="similar_windows_approximate")
        exact_distances = {row[:2]: row[2] for row in numpy_nearest(keys, vectors, query,
                                                                    len(keys))}
        # Whatever it finds, it reports the exact distance, nearest first, of this model.
        assert got == sorted(got, key=lambda row: (row[2], row[0], row[1]))
        assert all(abs(row[2] - exact_distances[row[:2]]) < 1e-6 for row in got)
        found += len({row[:2] for row in got} & {row[:2] for row in expected})
        exact += len(expected)
    assert found / exact > 0.8  # an index search, not a scan: recall is measured in bench
