"""Streams the staged windows of one run out of PostgreSQL as numpy arrays.

SQL has bounded every window (first valid row, rows filled); here the values are gathered.
Per group of instruments, two queries read the window bounds and the instruments' valid
rows, each packed by the server into one bytea of fixed-size rows, so numpy parses it in one
call (packed_rows.py), and the windows are gathered with one fancy-indexing step: no Python
object per value, and memory bounded by the group, whatever the number of windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.fingerprints import window_inputs
from prometheus.numeric.packed_rows import read_packed_rows
from prometheus.numeric.registry import FEATURES
from prometheus.numeric.run_request import BATCH_WINDOWS

RANK_SHIFT = 40  # (selection_rank << 40) | valid_row_number orders rows like HISTORY does

# The packed rows of queries.BOUNDS and queries.HISTORY, field by field in the order the
# queries pack them. Dates travel as date_send gives them: days since 2000-01-01 (PG_EPOCH).
BOUNDS_ROW = np.dtype([("window_seq", ">i8"), ("selection_rank", ">i4"),
                       ("first_row_number", ">i8"), ("rows_filled", ">i4"),
                       ("as_of_date", ">i4"), ("start_date", ">i4"), ("end_date", ">i4"),
                       ("rows_observed", ">i4"), ("min_rows", ">i4"), ("lookback_days", ">i4"),
                       ("rows_rejected", ">i4"), ("trading_days_after_end", ">i4"),
                       ("is_stale", "u1"), ("stored_models", ">i8")])
HISTORY_ROW = np.dtype([("selection_rank", ">i4"), ("valid_row_number", ">i8"),
                        ("trade_date", ">i4"), ("close", ">f8"), ("volume", ">f8"),
                        ("log_return", ">f8"), ("row_hash", ">i8"), ("previous_close", ">f8")])
PG_EPOCH = np.datetime64("2000-01-01", "D")
NO_TRADING_DAYS = np.iinfo(np.int32).min  # trading_days_after_end unknown (no market)


@dataclass(frozen=True)
class StagedWindows:
    """Which windows a batch holds: their BOUNDS_ROW (keys, and what window_spec says of
    each), the instrument ids by selection_rank, and what their inputs fingerprint sums
    (fingerprints.py): all the writer needs."""

    bounds: np.ndarray
    instrument_ids: dict[int, str]  # selection_rank -> instrument_id
    rows_hash: NDArray[np.int64]  # per window: the wrapped sum of its rows' row_hash
    previous_close: NDArray[np.float64]  # per window: the close before its first row

    @property
    def window_seqs(self) -> NDArray[np.int64]:
        return self.bounds["window_seq"].astype(np.int64)

    def __len__(self) -> int:
        return int(self.bounds.shape[0])

    def subset(self, mask: NDArray[np.bool_]) -> StagedWindows:
        return StagedWindows(self.bounds[mask], self.instrument_ids, self.rows_hash[mask],
                             self.previous_close[mask])


class RankedInstrument(NamedTuple):
    """One instrument of the run, as queries.GROUP_SIZES reads it: its 'ok' windows are
    window_seq first_seq..last_seq, as-of dates first_date..last_date."""

    selection_rank: int
    instrument_id: str
    windows: int
    first_seq: int
    last_seq: int
    first_date: dt.date
    last_date: dt.date


@dataclass(frozen=True)
class WindowBatch:
    windows: StagedWindows
    features: NDArray[np.float64]  # (n, window_days, 3): close, volume, log_return


def instrument_groups(sizes: list[tuple[int, int]], batch_windows: int
                      ) -> list[tuple[int, int]]:
    """Consecutive selection ranks grouped so each group holds about batch_windows windows
    (an instrument with more windows than that is a group of its own)."""
    groups: list[tuple[int, int]] = []
    total = 0
    for rank, count in sizes:
        if groups and total + count <= batch_windows:
            groups[-1] = (groups[-1][0], rank)
            total += count
        else:
            groups.append((rank, rank))
            total = count
    return groups


def gather_windows(bounds: np.ndarray, history: np.ndarray, window_days: int,
                   instrument_ids: dict[int, str] | None = None) -> WindowBatch:
    """The (n, window_days, 3) values of each window, filled at the front per SPEC."""
    history_keys = (history["selection_rank"].astype(np.int64) << RANK_SHIFT) | \
        history["valid_row_number"].astype(np.int64)
    first_keys = (bounds["selection_rank"].astype(np.int64) << RANK_SHIFT) | \
        bounds["first_row_number"].astype(np.int64)
    filled = bounds["rows_filled"].astype(np.int64)
    start = np.searchsorted(history_keys, first_keys)
    offsets = np.maximum(np.arange(window_days)[None, :] - filled[:, None], 0)
    index = start[:, None] + offsets
    # Each window's rows must be present and consecutive: its last key is first + observed - 1.
    last_index = index[:, -1]
    # And still on the dates staged: another run may have recomputed the instrument's rows
    # (a corrected past) since this run staged its windows.
    if (last_index >= history_keys.size).any() or not np.array_equal(
            history_keys[last_index], first_keys + (window_days - filled - 1)) \
            or not np.array_equal(history["trade_date"][last_index], bounds["end_date"]) \
            or not np.array_equal(history["trade_date"][start], bounds["start_date"]):
        raise PipelineError("the valid rows of a window changed while it was encoded; re-run")
    features = np.empty((len(bounds), window_days, len(FEATURES)), dtype=np.float64)
    for position, name in enumerate(FEATURES):  # the rows' columns are named as the features
        features[:, :, position] = history[name][index]
    log_return = features[:, :, FEATURES.index("log_return")]
    log_return[np.arange(window_days)[None, :] < filled[:, None]] = 0.0  # filled rows
    rows_hash, previous_close = window_inputs(history["row_hash"].astype(np.int64),
                                              history["previous_close"].astype(np.float64),
                                              start, window_days - filled)
    return WindowBatch(StagedWindows(bounds, instrument_ids or {}, rows_hash, previous_close),
                       features)


def read_windows(conn: psycopg.Connection, windows_relation: str, returns_relation: str,
                 run_id: str, window_days: int, embeddings_relation: str, models: list[str],
                 batch_windows: int = BATCH_WINDOWS, after_rank: int = 0
                 ) -> Generator[WindowBatch, None, None]:
    """Yield the run's 'ok' windows of the instruments ranked after after_rank, instrument by
    instrument, at most batch_windows at once, each with the bit mask of the models that
    already have its vector (stored_models).

    Runs in one repeatable-read transaction so every query sees the same snapshot."""
    params = {"windows": sql.SQL(windows_relation), "returns": sql.SQL(returns_relation),
              "embeddings": sql.SQL(embeddings_relation), "run_id": sql.Literal(run_id),
              "models": sql.Literal(models),
              "no_trading_days": sql.Literal(int(NO_TRADING_DAYS)),
              "after_rank": sql.Literal(after_rank)}
    # Each query reads one group of instruments through an index: JIT compilation (on by
    # default in PostgreSQL) would cost more than the query.
    conn.execute(queries.READER_NO_JIT)
    with conn.transaction():
        conn.execute(queries.READER_SNAPSHOT)
        ranked = [RankedInstrument(*row) for row in conn.execute(
            sql.SQL(queries.GROUP_SIZES).format(**params)).fetchall()]
        position = {instrument.selection_rank: index for index, instrument in enumerate(ranked)}
        sizes = [(instrument.selection_rank, instrument.windows) for instrument in ranked]
        for first_rank, last_rank in instrument_groups(sizes, batch_windows):
            members = ranked[position[first_rank]:position[last_rank] + 1]
            group = {**params, "first_seq": sql.Literal(members[0].first_seq),
                     "last_seq": sql.Literal(members[-1].last_seq)}
            group["stored_models"] = _stored_models(conn, group, members)
            bounds = read_packed_rows(conn, sql.SQL(queries.BOUNDS).format(**group),
                                      BOUNDS_ROW, "staged windows")
            history = read_packed_rows(conn, sql.SQL(queries.HISTORY).format(**group),
                                       HISTORY_ROW, "the staged windows' valid rows")
            instrument_ids = {member.selection_rank: member.instrument_id for member in members}
            for start in range(0, len(bounds), batch_windows):
                yield gather_windows(bounds[start:start + batch_windows], history, window_days,
                                     instrument_ids)


def _stored_models(conn: psycopg.Connection, group: dict[str, sql.Composable],
                   members: list[RankedInstrument]) -> sql.Composable:
    """The BOUNDS column telling which models have each window's vector: a probe of the
    unique key per window, or a constant 0 when none of the group's keys is stored (a first
    backfill skips the probes)."""
    any_stored = conn.execute(sql.SQL(queries.ANY_STORED).format(
        **group, instrument_ids=sql.Literal([member.instrument_id for member in members]),
        first_date=sql.Literal(min(member.first_date for member in members)),
        last_date=sql.Literal(max(member.last_date for member in members)))).fetchone()
    if any_stored and any_stored[0]:
        return sql.SQL(queries.STORED_MODELS).format(**group)
    return sql.SQL(queries.NONE_STORED)
