"""Steps on the ~1,000,000-vector store the step million leaves: a price correction found
and refreshed by a --skip-existing re-run, similar_windows (exact), and the HNSW index of
similar_windows_approximate (build time, recall against the exact answer)."""

from __future__ import annotations

import statistics
import time

import psycopg

from bench.context import BenchContext
from bench.settings import MILLION_INSTRUMENTS, MODEL_ID

CORRECTED = ("US_EQ_0011", "US_EQ_0123", "US_EQ_0777")
NOTHING_TO_DO = "--skip-existing re-run of the ~1M range, nothing to do"
CORRECTION = "--skip-existing re-run of the ~1M range after 3 instruments corrected"
SIMILAR = "similar_windows(k=10), exact, ~1M vectors"
HNSW_BUILD = "HNSW index build (cosine, 384 dims), ~1M vectors"
HNSW_QUERY = "similar_windows_approximate(k=10), ~1M vectors"
HNSW_RECALL = "similar_windows_approximate recall@10 vs exact"
QUERIES = 7


def _million_ok(ctx: BenchContext, label: str) -> bool:
    run = ctx.runs.get("million")
    if run is None or not run.ok:
        ctx.not_run(label, "s", "the million run failed")
        return False
    return True


def correction(ctx: BenchContext) -> None:
    """The daily --skip-existing re-run of the stored range with nothing to do, then the same
    after one close of each of 3 instruments was corrected: the difference should be the
    re-embedding of the touched windows, not a recomputation of the store."""
    if not _million_ok(ctx, f"{CORRECTION}: wall"):
        return
    args = [*ctx.s.range_args(limit=MILLION_INSTRUMENTS), "--skip-existing"]
    idle = ctx.cli("million-skip-existing", args)
    ctx.add_cli_figure(NOTHING_TO_DO, idle, rate=False)
    mid = ctx.s.start_date + (ctx.s.end_date - ctx.s.start_date) / 2
    with psycopg.connect(autocommit=True) as conn:
        corrected = conn.execute(
            "update prices_daily set close = close * 1.1 where (instrument_id, trade_date) in ("
            " select instrument_id, min(trade_date) from prices_daily"
            " where instrument_id = any(%s) and trade_date >= %s group by instrument_id)",
            (list(CORRECTED), mid)).rowcount
    run = ctx.cli("million-correction", args)
    ctx.add_cli_figure(CORRECTION, run, rate=False)
    if run.ok:
        summary = run.summary()
        ctx.report.notes.append(
            f"correction: {corrected} closes of {', '.join(CORRECTED)} raised 10% on their "
            f"first trade date from {mid}; the re-run refreshed {summary.get('refreshed')} "
            f"vectors, outdated_left={summary.get('outdated_left')}")
        ctx.add_time_breakdown(run)
    ctx.report.add_ratio("correction re-run / nothing-to-do re-run", f"{CORRECTION}: wall",
                         f"{NOTHING_TO_DO}: wall")


def _query_keys(conn: psycopg.Connection) -> list[tuple[str, object]]:
    return conn.execute(
        "select entity_id, as_of_date from numeric_window_embeddings"
        " where model_id = %s order by embedding_id desc limit %s",
        (MODEL_ID, QUERIES * 997)).fetchall()[::997]


def _timed_queries(conn: psycopg.Connection, function: str, keys: list[tuple[str, object]]
                   ) -> tuple[list[float], list[list[tuple[str, object]]]]:
    seconds, answers = [], []
    for entity_id, as_of_date in keys:
        started = time.monotonic()
        rows = conn.execute(f"select entity_id, as_of_date from {function}(%s, %s, %s, 10)",
                            (entity_id, as_of_date, MODEL_ID)).fetchall()
        seconds.append(time.monotonic() - started)
        answers.append(rows)
    return seconds, answers


def similar_windows(ctx: BenchContext) -> None:
    """similar_windows at ~1M stored vectors: the median of a few queries, each on a warm
    cache (an analyst's second question, not the server's first)."""
    if not _million_ok(ctx, SIMILAR):
        return
    ctx.settle()
    with psycopg.connect(autocommit=True) as conn:
        if not conn.execute("select to_regclass('numeric_window_vectors') is not null"
                            ).fetchone()[0]:  # type: ignore[index]
            ctx.not_run(SIMILAR, "s", "no pgvector companion in the bench database")
            return
        stored = conn.execute("select count(*) from numeric_window_vectors").fetchone()
        keys = _query_keys(conn)
        _timed_queries(conn, "similar_windows", keys[:1])  # the cache, once
        seconds, _ = _timed_queries(conn, "similar_windows", keys)
    ctx.report.add(SIMILAR, statistics.median(seconds), "s",
                   f"median of {len(seconds)} keys over {stored[0] if stored else 0:,} vectors;"
                   f" max {max(seconds):.2f} s")


def hnsw(ctx: BenchContext) -> None:
    """The HNSW index of similar_windows_approximate: its build time, the approximate
    query's time and its recall of the exact 10 nearest."""
    if not _million_ok(ctx, HNSW_BUILD):
        return
    ctx.settle()
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("drop index if exists numeric_window_vectors_hnsw_384")
    build = ctx.cli_dbt("hnsw-build", ["run-operation", "create_similar_windows_index",
                                       "--args", "{dims: 384, maintenance_work_mem: 4GB}"])
    ctx.report.add(HNSW_BUILD, build, "s", "create_similar_windows_index, "
                   "maintenance_work_mem 4GB, PostgreSQL's default parallel maintenance workers")
    if build is None:
        return
    with psycopg.connect(autocommit=True) as conn:
        keys = _query_keys(conn)
        _, exact = _timed_queries(conn, "similar_windows", keys)
        _timed_queries(conn, "similar_windows_approximate", keys[:1])
        seconds, approximate = _timed_queries(conn, "similar_windows_approximate", keys)
        conn.execute("drop index numeric_window_vectors_hnsw_384")  # writes stay as measured
    found = sum(len(set(a) & set(e)) for a, e in zip(approximate, exact, strict=True))
    ctx.report.add(HNSW_QUERY, statistics.median(seconds), "s",
                   f"median of {len(seconds)} keys")
    ctx.report.add(HNSW_RECALL, found / max(1, sum(len(e) for e in exact)), "share",
                   f"{found} of the exact answers' {sum(len(e) for e in exact)} keys found")
