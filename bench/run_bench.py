"""`make bench`: the benchmark of issue 3, item 8. A script, not a test: it reports numbers.

In one run, against its own database on the server the libpq variables name:
  (a) a ~3-year daily range end to end through the real CLI (a subprocess),
  (b) the package's encode+write step alone, on the windows (a) staged,
  (c) the original tool re-implemented: one query, one INSERT, one commit per window,
  (d) the ceiling: one binary COPY of as many 1536-byte rows into a same-keyed table,
plus the single-date command's wall time (on an empty and on a backfilled database), a
--skip-existing re-run, two shards in parallel and the CLI's peak RSS; then the issue's
targets as PASS/FAIL, written to bench-results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.cli_runs import CliRun, cli_help, run_cli, run_parallel, where_time_goes
from bench.direct import (
    Throughput,
    baseline_windows,
    ceiling_rows,
    copy_ceiling,
    encode_and_write,
    fresh_table,
    original_approach,
)
from bench.report import Figure, Report, Target
from prometheus.numeric.backfill import EMBEDDINGS_SOURCE, RETURNS_NODE, WINDOWS_NODE
from prometheus.numeric.dbt_runner import DbtRunner, find_profiles_dir, find_project_dir
from prometheus.numeric.demo_data import MarketShape, load_demo
from prometheus.numeric.registry import load_registry, resolve_models

PROJECT_DIR = Path(__file__).resolve().parents[1]
MODEL_ID = "num-stab-core-v1"
MARKET_ID = "US_EQ"
WINDOW_DAYS = 63
MILLION_INSTRUMENTS = 1_400  # x ~731 trading days: about 1,000,000 windows


@dataclass(frozen=True)
class Settings:
    database: str
    instruments: int
    market_start: dt.date
    market_end: dt.date
    start_date: dt.date
    end_date: dt.date
    single_date: dt.date
    baseline_windows: int
    million: bool
    cli_timeout: float
    out_dir: Path

    def range_args(self, limit: int | None = None) -> list[str]:
        return ["--start-date", self.start_date.isoformat(), "--end-date",
                self.end_date.isoformat(), "--frequency", "daily", *self._common(limit)]

    def single_date_args(self) -> list[str]:
        return ["--as-of", self.single_date.isoformat(), *self._common(None)]

    def _common(self, limit: int | None) -> list[str]:
        return ["--window-days", str(WINDOW_DAYS), "--market-id", MARKET_ID,
                "--limit", str(limit or self.instruments), "--model-id", MODEL_ID]


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    date = dt.date.fromisoformat
    parser.add_argument("--database", default="prometheus_bench",
                        help="database to drop and recreate (default prometheus_bench)")
    parser.add_argument("--instruments", type=int, default=500)
    # The market starts a quarter before the range so the first windows are full.
    parser.add_argument("--market-start", type=date, default=dt.date(2021, 10, 1))
    parser.add_argument("--market-end", type=date, default=dt.date(2025, 2, 28))
    parser.add_argument("--start-date", type=date, default=dt.date(2022, 4, 1))
    parser.add_argument("--end-date", type=date, default=dt.date(2025, 2, 28))
    parser.add_argument("--single-date", type=date, default=dt.date(2025, 1, 31))
    parser.add_argument("--baseline-windows", type=int, default=5_000,
                        help="windows the original approach is timed on (default 5000)")
    parser.add_argument("--million", action="store_true",
                        help=f"also run ~1,000,000 windows ({MILLION_INSTRUMENTS} instruments) "
                             "for the peak-RSS target (adds several minutes)")
    parser.add_argument("--cli-timeout", type=float, default=900,
                        help="kill a CLI run after this many seconds (default 900)")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_DIR / "bench-results")
    args = parser.parse_args(argv)
    return Settings(args.database, args.instruments, args.market_start, args.market_end,
                    args.start_date, args.end_date, args.single_date, args.baseline_windows,
                    args.million, args.cli_timeout, args.out_dir)


# Every table of the bench database with rows changed since its last vacuum or analyze.
SETTLE_TABLES = """
select relid::regclass::text
from pg_stat_user_tables
where n_mod_since_analyze > 0 or n_ins_since_vacuum > 0 or n_dead_tup > 0
"""
AUTOVACUUM_ACTIVE = """
select 1 from pg_stat_activity
where backend_type = 'autovacuum worker' and datname = current_database()
"""
SETTLE_TIMEOUT = 120.0


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Bench:
    """One benchmark run: the database, the measurements taken so far, the report."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        self.log_dir = settings.out_dir / f"bench-{self.stamp}-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.report = Report(self.stamp, {
            "database": settings.database,
            "market": f"{settings.instruments} ACTIVE equities ({MARKET_ID}), "
                      f"{settings.market_start} .. {settings.market_end}",
            "range": f"{settings.start_date} .. {settings.end_date} daily, window_days "
                     f"{WINDOW_DAYS}, model {MODEL_ID}",
            "machine": f"{os.cpu_count()} CPUs",
            "cli logs": str(self.log_dir),
        })
        self.env = dict(os.environ, PGDATABASE=settings.database)
        self.settle_seconds = 0.0

    # -- setup ---------------------------------------------------------------------------

    def create_database(self) -> None:
        step(f"recreating database {self.s.database}")
        with psycopg.connect(autocommit=True) as conn:
            name = sql.Identifier(self.s.database)
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(name))
            conn.execute(sql.SQL("create database {}").format(name))
        # Everything after this (dbt's relation names, our connections) targets the bench db.
        os.environ["PGDATABASE"] = self.s.database

    def load_market(self, instruments: int) -> None:
        step(f"loading a synthetic market of {instruments} instruments")
        started = time.monotonic()
        shape = MarketShape(active_equities=instruments, start_date=self.s.market_start,
                            end_date=self.s.market_end)
        with psycopg.connect(autocommit=True) as conn:
            count, prices = load_demo(conn, "public", shape)
        step(f"loaded {count} instruments, {prices:,} price rows in "
             f"{time.monotonic() - started:.1f} s")

    # -- between measurements ------------------------------------------------------------

    def settle(self) -> None:
        """Vacuum what the previous steps wrote, then wait for autovacuum to be idle, so that
        maintenance of the last step's rows does not run inside the next measurement (a
        vacuum of freshly written tables once doubled the single-date command's time). The
        time it takes is reported, not hidden. Each step then starts on freshly analyzed
        tables, the favourable case: a daily run on a busy server may share it with
        autovacuum."""
        started = time.monotonic()
        with psycopg.connect(autocommit=True) as conn:
            tables = [row[0] for row in conn.execute(SETTLE_TABLES).fetchall()]
            for table in tables:
                conn.execute(sql.SQL("vacuum (analyze) {}").format(sql.SQL(table)))
            waited_out = time.monotonic() + SETTLE_TIMEOUT
            while conn.execute(AUTOVACUUM_ACTIVE).fetchone():
                if time.monotonic() > waited_out:
                    self.report.notes.append(
                        f"autovacuum was still running after {SETTLE_TIMEOUT:.0f} s of "
                        "waiting: the next figure may include it")
                    break
                time.sleep(0.5)
        self.settle_seconds += time.monotonic() - started

    # -- measurements --------------------------------------------------------------------

    def record_load(self, label: str, before: float) -> None:
        # The machine may be shared: a busy neighbour slows every figure, so say so.
        self.report.loads.append(f"{label:<45} {before:5.2f} -> {os.getloadavg()[0]:5.2f}")

    def timed(self, label: str, action: Callable[[], Throughput]) -> Throughput | str:
        """Run one in-process measurement; its error text instead of a number if it fails."""
        self.settle()
        step(label)
        before = os.getloadavg()[0]
        try:
            return action()
        except (psycopg.Error, ValueError, RuntimeError, AttributeError, TypeError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            step(f"{label} failed: {text}")
            return f"failed: {text}"
        finally:
            self.record_load(label, before)

    def cli(self, name: str, args: list[str]) -> CliRun:
        self.settle()
        before = os.getloadavg()[0]
        run = run_cli(name, args, self.env, PROJECT_DIR, self.log_dir, self.s.cli_timeout)
        self.record_load(f"CLI {name}", before)
        step(f"{name}: exit {run.returncode} in {run.seconds:.1f} s, "
             f"max RSS {run.max_rss_mb:.0f} MB, {run.vectors():,} vectors")
        return run

    def add_cli_figure(self, label: str, run: CliRun, rate: bool = True) -> float | None:
        if not run.ok:
            self.report.figures.append(Figure(label, None, "", f"CLI failed: {run.error()}"))
            return None
        self.report.figures.append(Figure(f"{label}: wall", run.seconds, "s",
                                          f"{run.vectors():,} vectors"))
        if not rate:
            return run.seconds
        per_second = run.vectors() / run.seconds
        self.report.figures.append(Figure(f"{label}: rate", per_second, "windows/s"))
        return per_second

    def add_throughput(self, label: str, result: Throughput | str, unit: str) -> float | None:
        if isinstance(result, str):
            self.report.figures.append(Figure(label, None, unit, result))
            return None
        self.report.figures.append(Figure(label, result.per_second, unit,
                                          f"{result.rows:,} in {result.seconds:.2f} s"))
        return result.per_second

    def add_time_breakdown(self, run: CliRun) -> None:
        self.report.notes.append(f"where the time of '{run.name}' went (longest gaps between "
                                 "its stderr lines):")
        self.report.notes += [f"  {line}" for line in where_time_goes(run)]

    def truncate_embeddings(self, embeddings: str) -> None:
        with psycopg.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("truncate {}").format(sql.SQL(embeddings)))

    def run(self) -> Report:
        s = self.s
        self.create_database()
        self.load_market(s.instruments)
        help_text = cli_help(self.env, PROJECT_DIR)
        supports_skip = "--skip-existing" in help_text
        supports_shard = "--shard" in help_text

        # Fixed cost: the original single-date command. The first run also creates the
        # tables and dbt's partial-parse cache; the second is the steady state.
        first = self.cli("single-date-cold", s.single_date_args())
        warm = self.cli("single-date", s.single_date_args())
        self.add_cli_figure("single-date command, first run", first, rate=False)
        single_seconds = self.add_cli_figure("single-date command, second run", warm,
                                             rate=False)
        self.report.targets.append(Target("single-date command wall (second run)",
                                          single_seconds, 4.0, at_least=False, unit=" s"))

        dbt = DbtRunner(find_project_dir(PROJECT_DIR), find_profiles_dir(PROJECT_DIR))
        embeddings = dbt.relation_name(EMBEDDINGS_SOURCE)
        windows = dbt.relation_name(WINDOWS_NODE)
        returns = dbt.relation_name(RETURNS_NODE)
        self.truncate_embeddings(embeddings)  # (a) writes into an empty table, as (b)-(d) do

        # (a) end to end.
        range_run = self.cli("range", s.range_args())
        rate_a = self.add_cli_figure("(a) range end to end (CLI)", range_run)
        self.add_time_breakdown(range_run)
        vectors = range_run.vectors() if range_run.ok else 0

        # --skip-existing on the finished range.
        if supports_skip and range_run.ok:
            skip = self.cli("skip-existing", [*s.range_args(), "--skip-existing"])
            skip_seconds = self.add_cli_figure("--skip-existing re-run", skip, rate=False)
            ratio = skip_seconds / range_run.seconds if skip_seconds is not None else None
            self.report.targets.append(Target("skip-existing re-run / first run", ratio, 0.15,
                                              at_least=False))
            if skip.ok:
                self.add_time_breakdown(skip)
        else:
            reason = "CLI has no --skip-existing" if not supports_skip else "range run failed"
            self.report.figures.append(Figure("--skip-existing re-run", None, "s", reason))
            self.report.targets.append(Target("skip-existing re-run / first run", None, 0.15,
                                              at_least=False, note=reason))

        # The daily habit on a backfilled database: the single-date command again, now with
        # the range's vectors and staged runs stored (statements that scale with the tables
        # instead of the run show here, not in the empty-database runs above).
        if range_run.ok:
            daily = self.cli("single-date-after-range", s.single_date_args())
            daily_seconds = self.add_cli_figure(
                "single-date command after the range backfill", daily, rate=False)
            self.report.targets.append(Target(
                "single-date command wall (after the range backfill)", daily_seconds, 4.0,
                at_least=False, unit=" s"))

        rate_b, rate_c, rate_d = self.direct_measurements(embeddings, windows, returns, range_run)

        def ratio(top: float | None, bottom: float | None) -> float | None:
            return top / bottom if top is not None and bottom else None

        self.report.targets += [
            Target("(a) end to end / (c) original", ratio(rate_a, rate_c), 100, True, "x"),
            Target("(a) end to end / (d) COPY ceiling", ratio(rate_a, rate_d), 0.5, True, "x"),
            Target("(b) encode+write / (d) COPY ceiling", ratio(rate_b, rate_d), 0.8, True,
                   "x"),
        ]

        if rate_c and rate_d:
            # The two end-to-end targets together need the ceiling to be >= 200x the
            # original; say when this machine's figures make them contradict each other.
            self.report.notes.append(
                f"(d) COPY ceiling / (c) original = {rate_d / rate_c:,.1f}x: (a) >= 100x (c) "
                f"means (a) >= {100 * rate_c:,.0f} windows/s, {100 * rate_c / rate_d:,.2f}x "
                "the ceiling of writing the same rows with one binary COPY")
        self.shards(supports_shard, range_run, embeddings)
        self.peak_rss(range_run, embeddings)
        self.report.notes.append(
            f"before each timed step the bench vacuumed the tables the previous steps wrote "
            f"and waited for autovacuum: {self.settle_seconds:.1f} s in all, not in any "
            "figure; each step started on freshly analyzed tables")
        if vectors:
            self.report.notes.append(f"(a) stored {vectors:,} vectors; summary: "
                                     f"{range_run.stdout.strip().splitlines()[-1]}")
        return self.report

    def direct_measurements(self, embeddings: str, windows: str, returns: str,
                            range_run: CliRun
                            ) -> tuple[float | None, float | None, float | None]:
        s = self.s
        specs = resolve_models(load_registry(PROJECT_DIR), [MODEL_ID])
        conninfo = ""  # libpq variables, PGDATABASE now the bench database
        with psycopg.connect(autocommit=True) as conn:
            target_b = fresh_table(conn, embeddings, "embeddings_encode_write")
            target_c = fresh_table(conn, embeddings, "embeddings_original")
            target_d = fresh_table(conn, embeddings, "embeddings_copy_ceiling")
            sample, requested = baseline_windows(conn, MARKET_ID, s.instruments, s.start_date,
                                                 s.end_date, s.baseline_windows)
            dim = specs[0].vector_dim(WINDOW_DAYS)
            shape = ceiling_rows(conn, embeddings, MODEL_ID, dim, s.instruments, s.start_date)

        if range_run.ok:
            run_id = range_run.summary().get("run_id", "")
            result_b = self.timed("(b) encode+write of the staged windows of (a)", lambda: (
                encode_and_write(conninfo, windows, returns, target_b, run_id, specs,
                                 WINDOW_DAYS)))
        else:
            result_b = "not run: the range run failed"
        rate_b = self.add_throughput("(b) encode+write step alone (package API)", result_b,
                                     "windows/s")

        result_c = self.timed(f"(c) original approach on {len(sample):,} windows",
                         lambda: original_approach(conninfo, target_c, sample, specs[0],
                                                   WINDOW_DAYS))
        rate_c = self.add_throughput("(c) original: query+INSERT+commit per window", result_c,
                                     "windows/s")

        # Without (a)'s count, as many rows as the range has (instrument, trading day) pairs.
        rows = range_run.vectors() if range_run.ok else requested
        result_d = self.timed(f"(d) COPY ceiling, {rows:,} rows",
                         lambda: copy_ceiling(conninfo, target_d, rows, shape))
        rate_d = self.add_throughput("(d) ceiling: binary COPY, 1536-byte vectors", result_d,
                                     "rows/s")
        return rate_b, rate_c, rate_d

    def shards(self, supported: bool, range_run: CliRun, embeddings: str) -> None:
        target_label = "two shards in parallel / one worker"
        if not supported or not range_run.ok:
            reason = "CLI has no --shard" if not supported else "range run failed"
            self.report.figures.append(Figure("two shards in parallel", None, "s", reason))
            self.report.targets.append(Target(target_label, None, 0.7, False, "x", reason))
            return
        # Same starting point as the one-worker run (a): an empty table.
        self.truncate_embeddings(embeddings)
        args = self.s.range_args()
        self.settle()
        before = os.getloadavg()[0]
        seconds, runs = run_parallel({"shard-0of2": [*args, "--shard", "0/2"],
                                      "shard-1of2": [*args, "--shard", "1/2"]},
                                     self.env, PROJECT_DIR, self.log_dir,
                                     self.s.cli_timeout)
        self.record_load("CLI two shards", before)
        failed = [run for run in runs if not run.ok]
        if failed:
            note = f"{failed[0].name} failed: {failed[0].error()}"
            self.report.figures.append(Figure("two shards in parallel", None, "s", note))
            self.report.targets.append(Target(target_label, None, 0.7, False, "x", note))
            return
        stored = sum(run.vectors() for run in runs)
        self.report.figures.append(Figure(
            "two shards in parallel: wall", seconds, "s",
            f"{stored:,} vectors (one worker: {range_run.vectors():,}); "
            f"max RSS {max(run.max_rss_mb for run in runs):.0f} MB each"))
        self.report.targets.append(Target(target_label, seconds / range_run.seconds, 0.7,
                                          False, "x"))
        for run in runs:
            self.add_time_breakdown(run)

    def peak_rss(self, range_run: CliRun, embeddings: str) -> None:
        label = "peak RSS of the CLI"
        self.report.figures.append(Figure(f"{label}, range run (a)", range_run.max_rss_mb, "MB",
                                          f"{range_run.vectors():,} windows"))
        if not self.s.million:
            # A failed run's RSS says nothing about streaming: no verdict then.
            self.report.targets.append(Target(
                f"{label} (at {range_run.vectors():,} windows, not 1M)",
                range_run.max_rss_mb if range_run.ok else None, 600, False, " MB",
                "the target is for 1,000,000 windows: run with --million"))
            return
        self.load_market(MILLION_INSTRUMENTS)
        self.truncate_embeddings(embeddings)
        run = self.cli("million", self.s.range_args(limit=MILLION_INSTRUMENTS))
        self.add_cli_figure("~1M-window range run", run)
        self.report.figures.append(Figure(f"{label}, ~1M-window run", run.max_rss_mb, "MB"))
        rss = run.max_rss_mb if run.ok else None
        self.report.targets.append(Target(f"{label} (at {run.vectors():,} windows)", rss, 600,
                                          False, " MB"))
        if run.ok:
            self.add_time_breakdown(run)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    bench = Bench(settings)
    started = time.monotonic()
    report = bench.run()
    report.settings["bench wall"] = f"{time.monotonic() - started:.0f} s"
    text_path, json_path = report.write(settings.out_dir, bench.stamp)
    print(report.text())
    step(f"wrote {text_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
