"""What one `make bench` run measures: its command-line options, checked."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.demo_data import MIN_ACTIVE_EQUITIES

PROJECT_DIR = Path(__file__).resolve().parents[1]
DOCS_PATH = PROJECT_DIR / "docs" / "performance.md"
MODEL_ID = "num-stab-core-v1"
MARKET_ID = "US_EQ"
WINDOW_DAYS = 63
MILLION_INSTRUMENTS = 1_400  # x ~731 trading days: about 1,000,000 windows
# A smaller --instruments still builds the demo's smallest market (its special cases need
# it) and selects only that many (the CLI's --limit).
DEMO_MIN_EQUITIES = MIN_ACTIVE_EQUITIES


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
    steps: tuple[str, ...]  # as asked; run_bench adds what they need
    cli_timeout: float
    out_dir: Path
    docs: Path | None  # None: --no-docs

    @property
    def market_instruments(self) -> int:
        return max(self.instruments, DEMO_MIN_EQUITIES)

    def range_args(self, limit: int | None = None) -> list[str]:
        return ["--start-date", self.start_date.isoformat(), "--end-date",
                self.end_date.isoformat(), "--frequency", "daily", *self._common(limit)]

    def single_date_args(self) -> list[str]:
        return ["--as-of", self.single_date.isoformat(), *self._common(None)]

    def _common(self, limit: int | None) -> list[str]:
        return ["--window-days", str(WINDOW_DAYS), "--market-id", MARKET_ID,
                "--limit", str(limit or self.instruments), "--model-id", MODEL_ID]

    def describe(self) -> dict[str, str]:
        return {
            "database": self.database,
            "market": f"{self.market_instruments} ACTIVE equities ({MARKET_ID}), "
                      f"{self.market_start} .. {self.market_end}",
            "range": f"{self.start_date} .. {self.end_date} daily, {self.instruments} "
                     f"instruments, window_days {WINDOW_DAYS}, model {MODEL_ID}",
            "single date": f"{self.single_date}, {self.instruments} instruments",
        }


def parse_args(argv: Sequence[str] | None, step_help: str,
               known_steps: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_bench",
        description="`make bench`: throughput of the numeric embedding backfill, as figures "
                    "(bench-results/ and docs/performance.md).",
        epilog=step_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    date = dt.date.fromisoformat
    parser.add_argument("--database", default="prometheus_bench",
                        help="database to drop and recreate (default prometheus_bench)")
    parser.add_argument("--instruments", type=int, default=500,
                        help="instruments per run (the CLI's --limit; default 500); the "
                             f"market has at least {DEMO_MIN_EQUITIES}")
    # The market starts a quarter before the range so the first windows are full.
    parser.add_argument("--market-start", type=date, default=dt.date(2021, 10, 1))
    parser.add_argument("--market-end", type=date, default=dt.date(2025, 2, 28))
    parser.add_argument("--start-date", type=date, default=dt.date(2022, 4, 1),
                        help="first as-of date of the range (default 2022-04-01)")
    parser.add_argument("--end-date", type=date, default=dt.date(2025, 2, 28))
    parser.add_argument("--single-date", type=date, default=dt.date(2025, 1, 31))
    parser.add_argument("--baseline-windows", type=int, default=5_000,
                        help="windows the original approach is timed on (default 5000)")
    parser.add_argument("--steps", default="all",
                        help="comma-separated steps to run (default: all but million); the "
                             "steps they need are added")
    parser.add_argument("--million", action="store_true",
                        help=f"add the step million: ~1,000,000 windows "
                             f"({MILLION_INSTRUMENTS} instruments) for peak RSS")
    parser.add_argument("--cli-timeout", type=float, default=900,
                        help="kill a CLI run after this many seconds (default 900)")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_DIR / "bench-results")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH,
                        help="the file whose last-run section is rewritten "
                             "(default docs/performance.md)")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not rewrite the last-run section of the docs")
    args = parser.parse_args(argv)
    steps = [name.strip() for name in args.steps.split(",") if name.strip()]
    unknown = [name for name in steps if name != "all" and name not in known_steps]
    if unknown or not steps:
        parser.error(f"--steps: unknown step {', '.join(unknown) or '(none given)'}; "
                     f"known: all, {', '.join(known_steps)}")
    if args.million:  # the ~1M-vector store and the steps measured on it
        steps += [name for name in ("million", "correction", "similar-windows")
                  if name not in steps]
    if args.instruments < 1 or args.start_date > args.end_date \
            or args.market_start >= args.start_date or args.end_date > args.market_end:
        parser.error("need --instruments >= 1 and --market-start < --start-date <= "
                     "--end-date <= --market-end")
    return Settings(args.database, args.instruments, args.market_start, args.market_end,
                    args.start_date, args.end_date, args.single_date, args.baseline_windows,
                    tuple(steps), args.cli_timeout, args.out_dir,
                    None if args.no_docs else args.docs)
