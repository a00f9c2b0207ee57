"""The registry of bench steps, in the order they run.

To add a step: write `def my_step(ctx: BenchContext) -> None` that records its figures with
ctx.report.add(...) (use ctx.cli / ctx.timed, which settle the database first and note the
load average), then add a Step to STEPS where it should run, naming in `needs` the steps
whose results it reads (ctx.range_run, ctx.runs, ctx.state). `--steps a,b` runs those and
what they need, always in this order. A step should record "n/a" with a note rather than
raise when it cannot measure; run_bench turns an unexpected error into such a figure too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench import steps_cli, steps_direct, steps_store
from bench.context import BenchContext


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[BenchContext], None]
    summary: str
    needs: tuple[str, ...] = ()
    default: bool = True  # run by `--steps all`


# single-date-cold deploys the project into the fresh database (views, tables, dbt's parse
# file): every other step needs it, and a step that ran without it would time that too.
DEPLOYED = ("single-date-cold",)
STEPS: list[Step] = [
    Step("single-date-cold", steps_cli.single_date_cold,
         "the single-date command on the fresh database (deploys)"),
    Step("single-date-warm", steps_cli.single_date_warm,
         "the single-date command again (steady state)", DEPLOYED),
    Step("range", steps_cli.range_end_to_end,
         "(a) the daily range end to end through the CLI, peak RSS", DEPLOYED),
    Step("encode-write", steps_direct.encode_write,
         "(b) encode_and_store alone on the range's staged windows", ("range",)),
    Step("skip-existing", steps_cli.skip_existing,
         "the range again with --skip-existing (nothing to do)", ("range",)),
    Step("single-date-after-range", steps_cli.single_date_after_range,
         "the single-date command on the backfilled database", ("range",)),
    Step("copy-ceiling", steps_direct.copy_ceiling_step,
         "(d) one binary COPY of as many rows as the range stored", DEPLOYED),
    Step("original", steps_direct.original,
         "(c) the original per-window approach, for context", DEPLOYED),
    Step("shards", steps_cli.shards,
         "the range as two --shard workers in parallel", ("range",)),
    Step("million", steps_cli.million,
         "~1,000,000 windows in one CLI run, peak RSS (--million)", DEPLOYED, default=False),
    Step("correction", steps_store.correction,
         "3 instruments corrected in the ~1M store, --skip-existing re-run (--million)",
         ("million",), default=False),
    Step("similar-windows", steps_store.similar_windows,
         "similar_windows (exact) over the ~1M store (--million)", ("million",),
         default=False),
    Step("hnsw", steps_store.hnsw,
         "the HNSW index: build time, approximate query, recall (--million)", ("million",),
         default=False),
]
BY_NAME = {step.name: step for step in STEPS}


def select(asked: Iterable[str]) -> tuple[list[Step], list[str]]:
    """The steps to run, in registry order: those asked ("all": the default ones) and what
    they need. Also returns a note per step added because another needs it."""
    wanted: set[str] = set()
    for name in asked:
        wanted |= {step.name for step in STEPS if step.default} if name == "all" else {name}
    added: list[str] = []
    pending = [(need, name) for name in wanted for need in BY_NAME[name].needs]
    while pending:
        name, needed_by = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        added.append(f"added step {name} (needed by {needed_by})")
        pending += [(need, name) for need in BY_NAME[name].needs]
    return [step for step in STEPS if step.name in wanted], added


def help_text() -> str:
    lines = ["steps (in the order they run):"]
    lines += [f"  {step.name:<24} {step.summary}" + ("" if step.default else " [not in all]")
              for step in STEPS]
    return "\n".join(lines)
