"""`make bench`: what the numeric embedding backfill costs, as figures. A script, not a test.

In one run, against its own database on the server the libpq variables name, after loading
a synthetic market, the steps of bench/steps.py (`--steps` picks some; see below), e.g.:
  the single-date command (first run, second run, and after the range backfill),
  (a) a ~3-year daily range end to end through the real CLI (a subprocess),
  (b) the package's encode+write step alone, on the windows (a) staged,
  a --skip-existing re-run of (a), with nothing left to do,
  (d) the ceiling: one binary COPY of as many 1536-byte rows into a same-keyed table,
  (c) the original tool re-implemented: one query, one INSERT, one commit per window,
  two shards in parallel, and the CLI's peak RSS (--million: at ~1,000,000 windows);
then a few ratios of those figures. Writes bench-results/bench-<time>.{txt,json} and the
last-run section of docs/performance.md (unless --no-docs).
"""

from __future__ import annotations

import datetime as dt
import shlex
import sys
import time
import traceback
from collections.abc import Sequence

from bench import steps
from bench.context import BenchContext, first_line, stamp_now, step
from bench.docs import git_commit, last_run_section, machine, rewrite_last_run, server_version
from bench.report import Report
from bench.settings import parse_args
from bench.steps_cli import RANGE
from bench.steps_direct import CEILING, ENCODE_WRITE, ORIGINAL

# Plain ratios of figures measured in the same run (the figures of one run share the
# machine's mood; across runs, compare with bench/ab.py).
RATIOS = (
    ("(a) end to end / (c) original", f"{RANGE}: rate", ORIGINAL),
    ("(a) end to end / (d) COPY ceiling", f"{RANGE}: rate", CEILING),
    ("(b) encode+write / (d) COPY ceiling", ENCODE_WRITE, CEILING),
    ("(d) COPY ceiling / (c) original", CEILING, ORIGINAL),
)


def run_steps(ctx: BenchContext, selected: list[steps.Step]) -> None:
    for entry in selected:
        step(f"step {entry.name}: {entry.summary}")
        started = time.monotonic()
        try:
            entry.run(ctx)
        except Exception as exc:
            # One broken step (the package's API changed under it, say) costs its figures,
            # not the run: the others are still measured and reported, the traceback shown.
            traceback.print_exc(file=sys.stderr)
            ctx.report.add(f"step {entry.name}", None, "", f"failed: {first_line(exc)}")
            step(f"step {entry.name} failed: {first_line(exc)}")
        step(f"step {entry.name} done in {time.monotonic() - started:.1f} s")


def finish(ctx: BenchContext) -> None:
    report = ctx.report
    for label, top, bottom in RATIOS:
        report.add_ratio(label, top, bottom)
    if "range" in report.steps and ctx.range_run is None:
        report.notes.append("the range run failed: the steps reading its results say n/a")
    report.notes.append(
        f"before each timed step the bench vacuumed the tables the previous steps wrote "
        f"and waited for autovacuum: {ctx.settle_seconds:.1f} s in all, not in any "
        "figure; each step started on freshly analyzed tables")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    settings = parse_args(arguments, steps.help_text(), list(steps.BY_NAME))
    selected, added = steps.select(settings.steps)
    stamp = stamp_now()
    report = Report(stamp, settings.describe())
    report.steps = [entry.name for entry in selected]
    report.notes += added
    report.environment = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(), "server": server_version(), "commit": git_commit(),
    }
    ctx = BenchContext(settings, report, stamp)
    report.settings["cli logs"] = str(ctx.log_dir)
    started = time.monotonic()
    ctx.create_database()
    ctx.load_market(settings.market_instruments)
    run_steps(ctx, selected)
    finish(ctx)
    report.settings["bench wall"] = f"{time.monotonic() - started:.0f} s"
    text_path, json_path = report.write(settings.out_dir, stamp)
    print(report.text())
    step(f"wrote {text_path} and {json_path}")
    if settings.docs is not None:
        command = " ".join(["python -m bench.run_bench", *map(shlex.quote, arguments)])
        problem = rewrite_last_run(settings.docs, last_run_section(report, command, json_path))
        step(problem or f"rewrote the last-run section of {settings.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
