"""Steps that run the real backfill CLI (a subprocess each): the single-date command, the
range end to end (a), its --skip-existing re-run, two shards, the ~1M-window run."""

from __future__ import annotations

import os

from bench.cli_runs import run_parallel
from bench.context import BenchContext
from bench.settings import MILLION_INSTRUMENTS, PROJECT_DIR

SINGLE_COLD = "single-date command, first run"
SINGLE_WARM = "single-date command, second run"
SINGLE_AFTER = "single-date command after the range backfill"
RANGE = "(a) range end to end (CLI)"
SKIP = "--skip-existing re-run"
SHARDS = "two shards in parallel"
MILLION = "~1M-window range run"
RSS = "peak RSS of the CLI"


def single_date_cold(ctx: BenchContext) -> None:
    """The original command on a fresh database: it also deploys the views, creates the
    tables and dbt's partial-parse file, which every later step relies on."""
    run = ctx.cli("single-date-cold", ctx.s.single_date_args())
    ctx.add_cli_figure(SINGLE_COLD, run, rate=False)


def single_date_warm(ctx: BenchContext) -> None:
    """The same command again: the steady state of a daily run."""
    run = ctx.cli("single-date", ctx.s.single_date_args())
    ctx.add_cli_figure(SINGLE_WARM, run, rate=False)


def range_end_to_end(ctx: BenchContext) -> None:
    """(a): the daily range through the CLI, into an empty table as (b)-(d) write."""
    ctx.truncate_embeddings()
    run = ctx.cli("range", ctx.s.range_args())
    ctx.add_cli_figure(RANGE, run)
    # A failed run's RSS says nothing about streaming the whole range.
    ctx.report.add(f"{RSS}, range run (a)", run.max_rss_mb if run.ok else None, "MB",
                   f"{run.vectors():,} windows" if run.ok else "the run failed")
    if run.ok:
        ctx.add_time_breakdown(run)
        ctx.report.notes.append(f"(a) stored {run.vectors():,} vectors; summary: "
                                f"{run.stdout.strip().splitlines()[-1]}")


def skip_existing(ctx: BenchContext) -> None:
    """The range again with --skip-existing, everything stored: the cost of finding that
    there is nothing to do."""
    if not ctx.cli_supports("--skip-existing"):
        ctx.not_run(f"{SKIP}: wall", "s", "the CLI has no --skip-existing")
        return
    if ctx.range_run is None:
        ctx.not_run(f"{SKIP}: wall", "s", "the range run failed")
        return
    run = ctx.cli("skip-existing", [*ctx.s.range_args(), "--skip-existing"])
    ctx.add_cli_figure(SKIP, run, rate=False)
    ctx.report.add_ratio("skip-existing re-run / first run", f"{SKIP}: wall", f"{RANGE}: wall")
    if run.ok:
        ctx.add_time_breakdown(run)


def single_date_after_range(ctx: BenchContext) -> None:
    """The daily habit on a backfilled database: statements that scale with the tables
    instead of the run show here, not in the empty-database runs."""
    if ctx.range_run is None:
        ctx.not_run(f"{SINGLE_AFTER}: wall", "s", "the range run failed")
        return
    run = ctx.cli("single-date-after-range", ctx.s.single_date_args())
    ctx.add_cli_figure(SINGLE_AFTER, run, rate=False)


def shards(ctx: BenchContext) -> None:
    """The range as two --shard workers at once, from an empty table as (a) started."""
    range_run = ctx.range_run
    if not ctx.cli_supports("--shard") or range_run is None:
        reason = "the CLI has no --shard" if range_run else "the range run failed"
        ctx.not_run(f"{SHARDS}: wall", "s", reason)
        return
    ctx.truncate_embeddings()
    args = ctx.s.range_args()
    ctx.settle()
    before = os.getloadavg()[0]
    seconds, runs = run_parallel({"shard-0of2": [*args, "--shard", "0/2"],
                                  "shard-1of2": [*args, "--shard", "1/2"]},
                                 ctx.env, PROJECT_DIR, ctx.log_dir, ctx.s.cli_timeout)
    ctx.record_load("CLI two shards", before)
    ctx.runs.update({run.name: run for run in runs})
    failed = [run for run in runs if not run.ok]
    if failed:
        ctx.report.add(f"{SHARDS}: wall", None, "s",
                       f"{failed[0].name} failed: {failed[0].error()}")
        return
    stored = sum(run.vectors() for run in runs)
    ctx.report.add(f"{SHARDS}: wall", seconds, "s",
                   f"{stored:,} vectors (one worker: {range_run.vectors():,}); "
                   f"max RSS {max(run.max_rss_mb for run in runs):.0f} MB each")
    ctx.report.add_ratio("two shards in parallel / one worker", f"{SHARDS}: wall",
                         f"{RANGE}: wall")
    for run in runs:
        ctx.add_time_breakdown(run)


def million(ctx: BenchContext) -> None:
    """About 1,000,000 windows in one run, for the CLI's peak RSS (streaming: it should not
    grow with the range). Reloads a bigger market, so it runs last."""
    ctx.load_market(max(MILLION_INSTRUMENTS, ctx.s.market_instruments))
    ctx.truncate_embeddings()
    run = ctx.cli("million", ctx.s.range_args(limit=MILLION_INSTRUMENTS))
    ctx.add_cli_figure(MILLION, run)
    ctx.report.add(f"{RSS}, ~1M-window run", run.max_rss_mb if run.ok else None, "MB",
                   f"{run.vectors():,} windows" if run.ok else "the run failed")
    if run.ok:
        ctx.add_time_breakdown(run)
