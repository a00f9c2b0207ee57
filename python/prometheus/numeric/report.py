"""A coverage report as a PNG: embedded vs skipped instruments per as-of date (stacked), and
one instrument's stored window as its three feature series, filled rows marked. A second PNG
(<output>-nearest.png) sets that window beside its nearest stored window of another
instrument (similar_windows; skipped, with a line saying why, without pgvector).

    python -m prometheus.numeric.report --model-id num-stab-core-v1 \\
        --start-date 2025-01-01 --end-date 2025-01-31 --instrument-id US_EQ_0011 \\
        --output reports/coverage.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import psycopg

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ModuleNotFoundError:  # an extra: the backfill installs without it
    sys.exit("report: matplotlib is not installed; `make report` installs it "
             "(pip install -e 'python[report]')")

from prometheus.numeric.connection import use_resolved_server
from prometheus.numeric.dbt_runner import DbtRunner
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.project import (
    EMBEDDINGS_SOURCE,
    PROJECT_NAME,
    find_profiles_dir,
    find_project_dir,
)
from prometheus.numeric.report_data import (
    CoverageSeries,
    InstrumentWindow,
    read_coverage,
    read_instrument_window,
    read_nearest,
)

COVERAGE_NODE = f"model.{PROJECT_NAME}.embedding_coverage"
INSTRUMENTS_NODE = f"model.{PROJECT_NAME}.stg_historical_db__instruments"
Nearest = tuple[InstrumentWindow, float]  # the nearest window and its cosine distance
COLORS = {"embedded": "#2f7d4f", "skipped": "#d9822b", "missing": "#b8312f",
          "filled": "#d9822b", "series": "#2b5c8a"}


def plot_coverage(ax: Axes, coverage: CoverageSeries, model_id: str) -> None:
    positions = np.arange(len(coverage.as_of_dates))
    layers = [
        ("embedded", coverage.embedded, COLORS["embedded"]),
        ("skipped: insufficient history (count above the bar)",
         coverage.skipped_insufficient_history, COLORS["skipped"]),
        ("window without stored vector", coverage.missing_vector, COLORS["missing"]),
    ]
    bottom = np.zeros(len(positions))
    for label, values, color in layers:
        if label.startswith("window without") and not values.any():
            continue
        ax.bar(positions, values, bottom=bottom, color=color, label=label, width=0.8)
        bottom += values
    skipped = coverage.skipped_insufficient_history + coverage.missing_vector
    for position, total, count in zip(positions, bottom, skipped, strict=True):
        if count:  # a few skips vanish in a tall bar: print them
            ax.annotate(str(count), (position, total), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8,
                        color=COLORS["skipped"])
    step = max(1, len(positions) // 15)
    ax.set_xticks(positions[::step])
    ax.set_xticklabels([d.isoformat() for d in coverage.as_of_dates[::step]],
                       rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("as-of date")
    ax.set_ylabel("instruments (count)")
    ax.set_title(f"Coverage of {model_id}: instruments embedded vs skipped per as-of date\n"
                 f"stale windows: {int(coverage.stale.sum())}; rejected price rows inside the "
                 f"windows' lookbacks: {int(coverage.rejected_rows.sum())} (summed over dates)",
                 fontsize=11)
    ax.set_ylim(0, max(1.0, float(bottom.max())) * 1.2)
    ax.legend(loc="upper left", ncols=3, fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)


def plot_feature(ax: Axes, window: InstrumentWindow, values: np.ndarray, label: str,
                 unit: str) -> None:
    rows = np.arange(1, window.window_days + 1)
    filled = window.rows_filled
    ax.plot(rows, values, color=COLORS["series"], linewidth=1.2, marker="o", markersize=2.5,
            label="observed row")
    if filled:
        ax.axvspan(0.5, filled + 0.5, color=COLORS["filled"], alpha=0.15)
        ax.plot(rows[:filled], values[:filled], linestyle="none", marker="s", markersize=5,
                markerfacecolor="white", markeredgecolor=COLORS["filled"],
                label=f"filled row ({filled}: repeats the oldest observation)")
    ax.set_ylabel(f"{label}\n({unit})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)


def build_figure(coverage: CoverageSeries, window: InstrumentWindow, model_id: str) -> Figure:
    # The Agg canvas directly, not pyplot: no display, no global figure state.
    fig = Figure(figsize=(11, 12), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(4, 1, height_ratios=[1.4, 1, 1, 1])
    plot_coverage(fig.add_subplot(grid[0]), coverage, model_id)
    close_ax = fig.add_subplot(grid[1])
    volume_ax = fig.add_subplot(grid[2], sharex=close_ax)
    return_ax = fig.add_subplot(grid[3], sharex=close_ax)
    features = window.features
    plot_feature(close_ax, window, features[:, 0], "close", window.currency or "currency")
    plot_feature(volume_ax, window, features[:, 1] / 1e6, "volume", "million shares per day")
    plot_feature(return_ax, window, features[:, 2], "log return",
                 "ln(close / previous close)")
    for ax in (close_ax, volume_ax):
        ax.tick_params(labelbottom=False)
    return_ax.set_xlabel(f"window row (1 = oldest, {window.window_days} = newest, "
                         "one row per trading day)")
    close_ax.set_title(
        f"{window.instrument_id}: its stored {model_id} window as of {window.as_of_date}\n"
        f"trade dates {window.start_date} to {window.end_date}; "
        f"{window.rows_filled} of {window.window_days} rows filled at the front", fontsize=11)
    return fig


def build_nearest_figure(window: InstrumentWindow, neighbour: InstrumentWindow,
                         distance: float, model_id: str) -> Figure:
    """The query window's three series (left) beside its nearest neighbour's (right)."""
    fig = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 2, sharex=True)
    for column, shown in enumerate((window, neighbour)):
        features = shown.features
        plot_feature(axes[0, column], shown, features[:, 0], "close", shown.currency or "")
        plot_feature(axes[1, column], shown, features[:, 1] / 1e6, "volume", "million shares")
        plot_feature(axes[2, column], shown, features[:, 2], "log return", "ln(close ratio)")
        role = "query window" if column == 0 else "nearest window of another instrument"
        axes[0, column].set_title(f"{role}: {shown.instrument_id} as of {shown.as_of_date}\n"
                                  f"trade dates {shown.start_date} to {shown.end_date}",
                                  fontsize=10)
        axes[2, column].set_xlabel("window row (1 = oldest)")
    fig.suptitle(f"{model_id}: cosine distance {distance:.6f} (raw values: mostly the "
                 "volume profile)", fontsize=11)
    return fig


def nearest_output(output: Path) -> Path:
    return output.with_name(f"{output.stem}-nearest{output.suffix}")


def write_report(model_id: str, start_date: dt.date, end_date: dt.date, instrument_id: str,
                 output: Path, project_dir: Path | None = None
                 ) -> tuple[CoverageSeries, InstrumentWindow, Nearest | None]:
    """Reads the data, draws it and writes the PNGs; returns what was drawn."""
    project = find_project_dir(project_dir)
    use_resolved_server()
    dbt = DbtRunner(project, find_profiles_dir(project))
    with psycopg.connect(autocommit=True) as conn:
        coverage = read_coverage(conn, dbt.relation_name(COVERAGE_NODE), model_id,
                                 start_date, end_date)
        embeddings, instruments = (dbt.relation_name(EMBEDDINGS_SOURCE),
                                   dbt.relation_name(INSTRUMENTS_NODE))
        window = read_instrument_window(conn, embeddings, instruments, model_id,
                                        instrument_id, start_date, end_date)
        try:
            nearest: Nearest | None = read_nearest(
                conn, embeddings, dbt.manifest().sources[EMBEDDINGS_SOURCE].schema,
                instruments, model_id, window)
        except PipelineError as exc:
            print(f"report: no nearest-window panel: {exc}", file=sys.stderr)
            nearest = None
    fig = build_figure(coverage, window, model_id)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100, format="png")
    if nearest is not None:
        build_nearest_figure(window, *nearest, model_id).savefig(
            nearest_output(output), dpi=100, format="png")
    return coverage, window, nearest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prometheus.numeric.report",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--start-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--end-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--instrument-id", required=True,
                        help="the instrument whose window is drawn")
    parser.add_argument("--output", type=Path, default=Path("reports/coverage.png"))
    parser.add_argument("--project-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.start_date > args.end_date:
        parser.error(f"--start-date {args.start_date} is after --end-date {args.end_date}")
    try:
        coverage, window, nearest = write_report(args.model_id, args.start_date, args.end_date,
                                        args.instrument_id, args.output, args.project_dir)
    except (PipelineError, psycopg.Error) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"wrote {args.output}: as_of_dates={len(coverage.as_of_dates)} "
          f"embedded={int(coverage.embedded.sum())} "
          f"skipped={int(coverage.skipped_insufficient_history.sum())} "
          f"instrument={window.instrument_id} as_of={window.as_of_date} "
          f"window_days={window.window_days} rows_filled={window.rows_filled}")
    if nearest is not None:
        print(f"wrote {nearest_output(args.output)}: nearest={nearest[0].instrument_id} "
              f"nearest_as_of={nearest[0].as_of_date} distance={nearest[1]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
