"""What every bench step shares: the database, the dbt relations, the CLI runs so far, the
report, and the helpers that time a step the same way (settle first, note the load)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.cli_runs import CliRun, cli_help, run_cli, where_time_goes
from bench.direct import Throughput
from bench.report import Report
from bench.settings import PROJECT_DIR, Settings
from prometheus.numeric.backfill import Relations
from prometheus.numeric.dbt_runner import DbtRunner
from prometheus.numeric.demo_data import MarketShape, load_demo
from prometheus.numeric.project import find_profiles_dir, find_project_dir

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
# What an in-process measurement may raise that should cost only its own figure.
STEP_ERRORS = (psycopg.Error, ValueError, RuntimeError, AttributeError, TypeError, KeyError)


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BenchContext:
    """One bench run. Steps read and extend it: `runs` holds every CLI run by name (the
    range run as "range"), `state` anything a later step wants from an earlier one."""

    def __init__(self, settings: Settings, report: Report, stamp: str) -> None:
        self.s = settings
        self.report = report
        self.log_dir = settings.out_dir / f"bench-{stamp}-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PGDATABASE=settings.database)
        self.runs: dict[str, CliRun] = {}
        self.state: dict[str, Any] = {}
        self.settle_seconds = 0.0
        self.market_instruments = 0

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
        self.market_instruments = instruments
        step(f"loaded {count} instruments, {prices:,} price rows in "
             f"{time.monotonic() - started:.1f} s")

    @cached_property
    def relations(self) -> Relations:
        """dbt's names of the run's relations (parsed in this process, once)."""
        project_dir = find_project_dir(PROJECT_DIR)
        with psycopg.connect(autocommit=True) as conn:
            return Relations.of(DbtRunner(project_dir, find_profiles_dir(project_dir)), conn)

    @cached_property
    def cli_help(self) -> str:
        return cli_help(self.env, PROJECT_DIR)

    def cli_supports(self, flag: str) -> bool:
        return flag in self.cli_help

    @property
    def range_run(self) -> CliRun | None:
        """The range run (a), when the step range ran and succeeded."""
        run = self.runs.get("range")
        return run if run is not None and run.ok else None

    def truncate_embeddings(self) -> None:
        with psycopg.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("truncate {} cascade").format(sql.SQL(self.relations.embeddings)))

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

    def record_load(self, label: str, before: float) -> None:
        # The machine may be shared: a busy neighbour slows every figure, so say so.
        self.report.loads.append(f"{label:<45} {before:5.2f} -> {os.getloadavg()[0]:5.2f}")

    # -- measurements --------------------------------------------------------------------

    def timed(self, label: str, action: Callable[[], Throughput]) -> Throughput | str:
        """Run one in-process measurement; its error text instead of a number if it fails."""
        self.settle()
        step(label)
        before = os.getloadavg()[0]
        try:
            return action()
        except STEP_ERRORS as exc:
            step(f"{label} failed: {first_line(exc)}")
            return f"failed: {first_line(exc)}"
        finally:
            self.record_load(label, before)

    def cli(self, name: str, args: list[str]) -> CliRun:
        """One CLI run, settled first, kept in `runs` under its name."""
        self.settle()
        before = os.getloadavg()[0]
        run = run_cli(name, args, self.env, PROJECT_DIR, self.log_dir, self.s.cli_timeout)
        self.record_load(f"CLI {name}", before)
        step(f"{name}: exit {run.returncode} in {run.seconds:.1f} s, "
             f"max RSS {run.max_rss_mb:.0f} MB, {run.vectors():,} vectors")
        self.runs[name] = run
        return run

    def cli_dbt(self, name: str, args: list[str]) -> float | None:
        """One dbt command as a process (settled first): its wall seconds, None if it failed
        (the failure is noted)."""
        self.settle()
        before = os.getloadavg()[0]
        started = time.monotonic()
        result = subprocess.run([str(Path(sys.executable).parent / "dbt"), *args],
                                cwd=PROJECT_DIR, env=self.env, capture_output=True, text=True,
                                timeout=self.s.cli_timeout)
        seconds = time.monotonic() - started
        self.record_load(f"dbt {name}", before)
        (self.log_dir / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            self.report.notes.append(f"dbt {name} failed (exit {result.returncode}); log in "
                                     f"{self.log_dir / (name + '.log')}")
            return None
        step(f"dbt {name}: {seconds:.1f} s")
        return seconds

    def add_cli_figure(self, label: str, run: CliRun, rate: bool = True) -> None:
        """`<label>: wall` (and `<label>: rate` in windows/s) of a CLI run."""
        if not run.ok:
            self.report.add(f"{label}: wall", None, "s", f"CLI failed: {run.error()}")
            return
        self.report.add(f"{label}: wall", run.seconds, "s", f"{run.vectors():,} vectors")
        if rate:
            self.report.add(f"{label}: rate", run.vectors() / run.seconds, "windows/s")

    def add_throughput(self, label: str, result: Throughput | str, unit: str) -> None:
        if isinstance(result, str):
            self.report.add(label, None, unit, result)
        else:
            self.report.add(label, result.per_second, unit,
                            f"{result.rows:,} in {result.seconds:.2f} s")

    def add_time_breakdown(self, run: CliRun) -> None:
        self.report.notes.append(f"where the time of '{run.name}' went (longest gaps between "
                                 "its stderr lines):")
        self.report.notes += [f"  {line}" for line in where_time_goes(run)]

    def not_run(self, label: str, unit: str, reason: str) -> None:
        self.report.add(label, None, unit, f"not run: {reason}")


def stamp_now() -> str:
    return dt.datetime.now().strftime("%Y%m%dT%H%M%S")
