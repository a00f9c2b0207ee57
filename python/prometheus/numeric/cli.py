"""The backfill command, flag for flag the original workflow's, plus date ranges.

Exit codes: 0 success (skipped instruments allowed), 1 runtime failure, 2 usage error.
Expected failures print one line on stderr and no traceback; the summary is stdout's last line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import sys
from pathlib import Path
from typing import NoReturn

import psycopg

from prometheus.numeric.errors import OneLineParser, PipelineError, UsageError, first_line
from prometheus.numeric.project import find_project_dir
from prometheus.numeric.registry import MAX_ID_LENGTH, load_registry, resolve_models
from prometheus.numeric.run_request import (
    BATCH_VALUES,
    BATCH_WINDOWS,
    DEFAULT_WINDOW_DAYS,
    MAX_BATCH_WINDOWS,
    MAX_WINDOW_DAYS,
    BackfillRequest,
)

PROG = "backfill_numeric_embeddings"
DEFAULT_MODEL_ID = "numeric-simple-v1"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _whole_number(minimum: int, maximum: int | None = None):  # type: ignore[no-untyped-def]
    expected = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number {expected}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be a whole number {expected}, got {value}")
        return value
    return parse


def _identifier(text: str) -> str:
    if not text or len(text) > MAX_ID_LENGTH:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_ID_LENGTH} characters, got {len(text)}")
    return text


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or int(count) < 1 or int(index) >= int(count):
        raise argparse.ArgumentTypeError(f"must be K/N with 0 <= K < N, got {text!r}")
    return int(index), int(count)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Embed windows of daily prices as numeric vectors in "
                    "numeric_window_embeddings (dbt stages, numpy encodes, psycopg stores).",
    )
    dates = parser.add_argument_group("as-of dates (one date, or a range)")
    dates.add_argument("--as-of", type=_date, help="as-of date, YYYY-MM-DD")
    dates.add_argument("--start-date", type=_date, help="first as-of date of a range")
    dates.add_argument("--end-date", type=_date, help="last as-of date of a range")
    dates.add_argument("--frequency", choices=["daily", "weekly", "month-end"], default="daily",
                       help="as-of dates in a range: every trading day, or the last of each "
                            "week or month (default daily)")
    selection = parser.add_argument_group("instruments")
    selection.add_argument("--market-id", type=_identifier,
                           help="select the market's ACTIVE EQUITY instruments")
    selection.add_argument("--limit", type=_whole_number(0), help="at most this many of them")
    selection.add_argument("--offset", type=_whole_number(0), default=0,
                           help="skip this many first (by instrument_id)")
    selection.add_argument("--instrument-id", type=_identifier, action="append", default=[],
                           dest="instrument_ids", help="add an instrument (repeatable)")
    window = parser.add_argument_group("window and model")
    window.add_argument("--window-days", type=_whole_number(1, MAX_WINDOW_DAYS),
                        default=DEFAULT_WINDOW_DAYS,
                        help=f"rows per window (default {DEFAULT_WINDOW_DAYS}, at most "
                             f"{MAX_WINDOW_DAYS:,})")
    window.add_argument("--min-days", type=_whole_number(1),
                        help="fewest observed rows (default floor(0.87 x window days))")
    window.add_argument("--model-id", action="append", dest="model_ids", type=_identifier,
                        help=f"registry model id, repeatable (default {DEFAULT_MODEL_ID})")
    run = parser.add_argument_group("run")
    run.add_argument("--skip-existing", action="store_true",
                     help="embed only keys not stored yet, and re-embed stored keys whose "
                          "inputs changed (outdated); stored and current keys are left alone")
    run.add_argument("--dry-run", action="store_true",
                     help="report what the run would do (the summary line) and change no "
                          "vector, no staged row and no change record")
    run.add_argument("--shard", type=_shard, default=(0, 1), metavar="K/N",
                     help="this worker's share of the instruments (stable hash); N workers "
                          "with K = 0..N-1 together do the whole backfill")
    run.add_argument("--batch-size", type=_whole_number(1, MAX_BATCH_WINDOWS),
                     help=f"windows per transaction (default {BATCH_WINDOWS}, fewer for "
                          f"windows over {DEFAULT_WINDOW_DAYS} rows: {BATCH_VALUES:,} values); "
                          "an interrupted run keeps its finished batches")
    run.add_argument("--stage-parts", type=_whole_number(1), metavar="N",
                     help="stage a range in N parts, encoding each while dbt stages the next "
                          "(default: by the range's size; 1 for one date)")
    run.add_argument("--no-tests", dest="run_tests", action="store_false",
                     help="skip the dbt tests of the stored vectors")
    run.add_argument("--project-dir", help="the dbt project (default: found from here)")
    run.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    return parser


def request_from_args(args: argparse.Namespace) -> BackfillRequest:
    """Checks that need several flags at once; each failure names the flag."""
    if args.as_of and (args.start_date or args.end_date):
        raise UsageError("--as-of cannot be combined with --start-date/--end-date")
    if not args.as_of and not (args.start_date and args.end_date):
        missing = "--end-date" if args.start_date else "--start-date" if args.end_date \
            else "--as-of (or --start-date and --end-date)"
        raise UsageError(f"{missing} is required")
    if args.start_date and args.start_date > args.end_date:
        raise UsageError(
            f"--start-date {args.start_date} is after --end-date {args.end_date}")
    if args.market_id is None and not args.instrument_ids:
        raise UsageError("nothing to select: give --market-id or --instrument-id")
    if args.min_days is not None and args.min_days > args.window_days:
        raise UsageError(
            f"--min-days {args.min_days} exceeds --window-days {args.window_days}")
    return BackfillRequest(
        model_ids=args.model_ids or [DEFAULT_MODEL_ID],
        window_days=args.window_days,
        as_of=args.as_of,
        start_date=args.start_date,
        end_date=args.end_date,
        frequency=args.frequency,
        market_id=args.market_id,
        limit=args.limit,
        offset=args.offset,
        instrument_ids=list(dict.fromkeys(args.instrument_ids)),
        min_days=args.min_days,
        run_tests=args.run_tests,
        batch_size=args.batch_size,
        skip_existing=args.skip_existing,
        dry_run=args.dry_run,
        shard=args.shard,
        stage_parts=args.stage_parts,
        project_dir=Path(args.project_dir) if args.project_dir else None,
    )


def check_models(request: BackfillRequest) -> None:
    """Unknown model ids, and windows a model cannot hold, are usage errors (exit 2)."""
    registry = load_registry(find_project_dir(request.project_dir))
    for spec in resolve_models(registry, request.model_ids):
        spec.vector_dim(request.window_days)


def main(argv: list[str] | None = None, *, exits_after: bool = False) -> int:
    """The command. exits_after: the process ends with it (the console script), so what
    dbt's imports made is frozen for the garbage collector once they are done."""
    args = build_parser().parse_args(argv)
    _configure_logging(logging.WARNING if args.quiet else logging.INFO)
    try:
        request = request_from_args(args)
        check_models(request)
        # dbt is imported only now: a usage error above exits before paying for it.
        from prometheus.numeric.backfill import Backfill

        if exits_after:
            # Everything alive now (mostly dbt's modules and classes) lives as long as the
            # process: the garbage collector's full passes need not walk it again and again.
            gc.freeze()
        summary = Backfill(request).run()
    except PipelineError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
        print(f"{PROG}: error: database error: {first_line(exc)}; finished batches are kept,"
              " re-run to complete", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"{PROG}: error: database unavailable: {first_line(exc)}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"{PROG}: error: database error: {first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted; whole batches are kept, re-run to complete",
              file=sys.stderr)
        return 1
    print(summary.line())
    return 0


def _configure_logging(level: int) -> None:
    # Our own handler: dbt configures logging of its own, which must not swallow ours.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("prometheus")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def run() -> NoReturn:
    """The console script and `python -m`."""
    code = main(exits_after=True)
    gc.freeze()  # the interpreter's last collections would walk everything the run made
    sys.exit(code)


if __name__ == "__main__":
    run()
