"""Steps measured in this process: (b) the package's encode+write step, (d) the binary COPY
ceiling, (c) the original per-window approach. Each writes into its own fresh copy of the
embeddings table (bench/direct.py), so none pays for another's rows."""

from __future__ import annotations

import psycopg
from psycopg import sql

from bench.context import BenchContext
from bench.direct import (
    baseline_windows,
    ceiling_rows,
    copy_ceiling,
    encode_and_write,
    fresh_table,
    fresh_vectors,
    original_approach,
)
from bench.settings import MARKET_ID, MODEL_ID, PROJECT_DIR, WINDOW_DAYS
from prometheus.numeric import queries
from prometheus.numeric.registry import ModelSpec, load_registry, resolve_models

ENCODE_WRITE = "(b) encode+write step alone (package API)"
ORIGINAL = "(c) original: query+INSERT+commit per window"
CEILING = "(d) ceiling: binary COPY, 1536-byte vectors"
CONNINFO = ""  # the libpq variables; PGDATABASE is the bench database by now


def _spec() -> ModelSpec:
    return resolve_models(load_registry(PROJECT_DIR), [MODEL_ID])[0]


def _fresh(ctx: BenchContext, name: str) -> str:
    with psycopg.connect(autocommit=True) as conn:
        return fresh_table(conn, ctx.relations.embeddings, name)


def encode_write(ctx: BenchContext) -> None:
    """(b): backfill.encode_and_store on the windows the range run staged. It runs right
    after the range: a later run of the same windows (the single date, the shards)
    supersedes the range's staged rows of those windows, and the prune deletes them."""
    range_run = ctx.range_run
    if range_run is None:
        ctx.not_run(ENCODE_WRITE, "windows/s", "the range run failed")
        return
    run_id = range_run.summary().get("run_id", "")
    with psycopg.connect(autocommit=True) as conn:
        row = conn.execute(sql.SQL(queries.RUN_OK_WINDOWS).format(
            windows=sql.SQL(ctx.relations.windows), run_id=sql.Literal(run_id))).fetchone()
    windows = int(row[0]) if row else 0
    target = _fresh(ctx, "embeddings_encode_write")
    vectors_target = None
    if getattr(ctx.relations, "vectors", None):
        with psycopg.connect(autocommit=True) as conn:
            vectors_target = fresh_vectors(conn, ctx.relations.vectors, target,
                                           "embeddings_encode_write_vectors")
    result = ctx.timed(f"(b) encode+write of the {windows:,} staged windows of (a)",
                       lambda: encode_and_write(ctx.relations, target, run_id, [_spec()],
                                                WINDOW_DAYS, windows, vectors_target))
    ctx.add_throughput(ENCODE_WRITE, result, "windows/s")


def copy_ceiling_step(ctx: BenchContext) -> None:
    """(d): as many rows as (a) stored (else as the range asks for), in one binary COPY."""
    spec = _spec()
    target = _fresh(ctx, "embeddings_copy_ceiling")
    with psycopg.connect(autocommit=True) as conn:
        _, requested = baseline_windows(conn, MARKET_ID, ctx.s.instruments, ctx.s.start_date,
                                        ctx.s.end_date, 1)
        shape = ceiling_rows(conn, ctx.relations.embeddings, MODEL_ID,
                             spec.vector_dim(WINDOW_DAYS), ctx.s.instruments,
                             ctx.s.start_date)
    range_run = ctx.range_run
    rows = range_run.vectors() if range_run else requested
    result = ctx.timed(f"(d) COPY ceiling, {rows:,} rows",
                       lambda: copy_ceiling(CONNINFO, target, rows, shape))
    ctx.add_throughput(CEILING, result, "rows/s")


def original(ctx: BenchContext) -> None:
    """(c): the original tool's approach, for context: evenly spaced dates of the range."""
    spec = _spec()
    target = _fresh(ctx, "embeddings_original")
    with psycopg.connect(autocommit=True) as conn:
        sample, _ = baseline_windows(conn, MARKET_ID, ctx.s.instruments, ctx.s.start_date,
                                     ctx.s.end_date, ctx.s.baseline_windows)
    result = ctx.timed(f"(c) original approach on {len(sample):,} windows",
                       lambda: original_approach(CONNINFO, target, sample, spec, WINDOW_DAYS))
    ctx.add_throughput(ORIGINAL, result, "windows/s")
