"""Streams the staged windows of one run out of PostgreSQL as numpy arrays.

SQL has bounded every window (first valid row, rows filled); here the values are gathered.
Per group of instruments, two binary COPYs read the window bounds and the instruments' valid
rows. Every COPY row has a fixed size, so numpy parses a whole stream in one call, and the
windows are gathered with one fancy-indexing step: no Python object per value, and memory
bounded by the group, whatever the number of windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from prometheus.numeric.errors import PipelineError

PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PGCOPY_HEADER_SIZE = len(PGCOPY_SIGNATURE) + 8  # + flags + header-extension length
PGCOPY_TRAILER = b"\xff\xff"
BATCH_WINDOWS = 20_000
RANK_SHIFT = 40  # (selection_rank << 40) | valid_row_number orders rows like the COPY does


def _fields(*columns: tuple[str, str]) -> np.dtype:
    """A COPY BINARY row of fixed-size fields: a field count, then (length, value) pairs."""
    layout: list[tuple[str, str]] = [("field_count", ">i2")]
    for name, kind in columns:
        layout += [(f"{name}_length", ">i4"), (name, kind)]
    return np.dtype(layout)


# Dates travel as COPY BINARY dates: days since 2000-01-01 (PG_EPOCH).
BOUNDS_ROW = _fields(("window_seq", ">i8"), ("selection_rank", ">i4"),
                     ("first_row_number", ">i8"), ("rows_filled", ">i4"),
                     ("as_of_date", ">i4"), ("start_date", ">i4"), ("end_date", ">i4"),
                     ("rows_observed", ">i4"), ("min_rows", ">i4"), ("lookback_days", ">i4"),
                     ("rows_rejected", ">i4"), ("trading_days_after_end", ">i4"),
                     ("is_stale", "u1"), ("stored_models", ">i8"))
HISTORY_ROW = _fields(("selection_rank", ">i4"), ("valid_row_number", ">i8"),
                      ("trade_date", ">i4"), ("close", ">f8"), ("volume", ">f8"),
                      ("log_return", ">f8"))
PG_EPOCH = np.datetime64("2000-01-01", "D")
NO_TRADING_DAYS = np.iinfo(np.int32).min  # trading_days_after_end unknown (no market)

# Which of the run's models already have a vector for a window: bit i of stored_models is
# models[i]. One probe of the unique key per window, made only when the group's instruments
# have any vector of these models in the run's dates (ANY_STORED): a first backfill skips it.
ANY_STORED = """
select exists (
    select 1
    from {embeddings} as stored
    where stored.entity_type = 'INSTRUMENT'
        and stored.entity_id = any({instrument_ids})
        and stored.as_of_date between {first_date} and {last_date}
        and stored.model_id = any({models})
)
"""

STORED_MODELS = """
coalesce((
    select bit_or(1::bigint << (array_position({models}::text[], stored.model_id::text) - 1))
    from {embeddings} as stored
    where stored.entity_type = 'INSTRUMENT'
        and stored.entity_id = windows.instrument_id
        and stored.as_of_date = windows.as_of_date
        and stored.model_id = any({models})
), 0)
"""

RUN_DATES = """
select min(as_of_date), max(as_of_date)
from {windows} as windows
where run_id = {run_id} and window_status = 'ok'
    and window_seq between {first_seq} and {last_seq}
"""

INSTRUMENTS = """
select distinct selection_rank, instrument_id
from {windows} as windows
where run_id = {run_id} and window_seq between {first_seq} and {last_seq}
"""

# A group of consecutive selection ranks is a consecutive range of window_seq (numbered by
# selection_rank, then as_of_date): every query below reads it through the
# (run_id, window_seq) index instead of scanning every run's windows.
GROUP_SIZES = """
select selection_rank, count(*), min(window_seq), max(window_seq)
from {windows} as windows
where run_id = {run_id} and window_status = 'ok' and window_seq > {after_seq}
group by selection_rank
order by selection_rank
"""

BOUNDS = """
copy (
    select
        window_seq, selection_rank, first_row_number, rows_filled,
        as_of_date, start_date, end_date, rows_observed, min_rows, lookback_days,
        rows_rejected, coalesce(trading_days_after_end, {no_trading_days}), is_stale,
        {stored_models}
    from {windows} as windows
    where run_id = {run_id} and window_status = 'ok'
        and window_seq between {first_seq} and {last_seq}
    order by selection_rank, window_seq
) to stdout (format binary)
"""

HISTORY = """
copy (
    with needed as (
        select
            instrument_id,
            selection_rank,
            min(first_row_number) as first_row_number,
            max(last_row_number) as last_row_number
        from {windows} as windows
        where run_id = {run_id} and window_status = 'ok'
            and window_seq between {first_seq} and {last_seq}
        group by instrument_id, selection_rank
    )
    select
        needed.selection_rank,
        returns.valid_row_number,
        returns.trade_date,
        returns.close,
        returns.volume,
        returns.log_return
    from needed
    inner join {returns} as returns
        on returns.instrument_id = needed.instrument_id
        and returns.valid_row_number
        between needed.first_row_number and needed.last_row_number
    order by needed.selection_rank, returns.valid_row_number
) to stdout (format binary)
"""


@dataclass(frozen=True)
class StagedWindows:
    """Which windows a batch holds: their BOUNDS_ROW (keys, and what window_spec says of
    each) and the instrument ids by selection_rank. All the writer needs."""

    bounds: np.ndarray
    instrument_ids: dict[int, str]  # selection_rank -> instrument_id

    @property
    def window_seqs(self) -> NDArray[np.int64]:
        return self.bounds["window_seq"].astype(np.int64)

    def __len__(self) -> int:
        return int(self.bounds.shape[0])

    def subset(self, mask: NDArray[np.bool_]) -> StagedWindows:
        return StagedWindows(self.bounds[mask], self.instrument_ids)


@dataclass(frozen=True)
class WindowBatch:
    windows: StagedWindows
    features: NDArray[np.float64]  # (n, window_days, 3): close, volume, log_return


def read_copy_rows(conn: psycopg.Connection, statement: sql.Composable,
                   row_dtype: np.dtype) -> np.ndarray:
    """Run a COPY ... TO STDOUT (FORMAT binary) whose rows are all row_dtype; parse them."""
    data = bytearray()
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            data += chunk
    if bytes(data[: len(PGCOPY_SIGNATURE)]) != PGCOPY_SIGNATURE or data[-2:] != PGCOPY_TRAILER:
        raise PipelineError("unexpected COPY BINARY stream from the server")
    extension = int.from_bytes(data[PGCOPY_HEADER_SIZE - 4:PGCOPY_HEADER_SIZE], "big")
    body = memoryview(data)[PGCOPY_HEADER_SIZE + extension: -2]
    if len(body) % row_dtype.itemsize:
        raise PipelineError("staged windows are malformed: a NULL where a value belongs")
    rows = np.frombuffer(body, dtype=row_dtype).copy()
    fields = row_dtype.names or ()
    ok = rows["field_count"] == (len(fields) - 1) // 2
    for name in fields[2::2]:
        ok &= rows[f"{name}_length"] == row_dtype.fields[name][0].itemsize  # type: ignore[index]
    if not ok.all():
        raise PipelineError("staged windows are malformed: a NULL where a value belongs")
    return rows


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
    features = np.empty((len(bounds), window_days, 3), dtype=np.float64)
    features[:, :, 0] = history["close"][index]
    features[:, :, 1] = history["volume"][index]
    features[:, :, 2] = history["log_return"][index]
    features[:, :, 2][np.arange(window_days)[None, :] < filled[:, None]] = 0.0  # filled rows
    return WindowBatch(StagedWindows(bounds, instrument_ids or {}), features)


def read_windows(conn: psycopg.Connection, windows_relation: str, returns_relation: str,
                 run_id: str, window_days: int, embeddings_relation: str, models: list[str],
                 batch_windows: int = BATCH_WINDOWS, after_seq: int = 0,
                 on_staged: Callable[[int], None] | None = None) -> Iterator[WindowBatch]:
    """Yield the run's 'ok' windows after window_seq after_seq (all of them by default; a run
    staged in parts reads each part as it lands, after the last window read), instrument by
    instrument, at most batch_windows at once, each with the bit mask of the models that
    already have its vector (stored_models). on_staged(n) first says how many will come.

    Runs in one repeatable-read transaction so every COPY sees the same snapshot."""
    params = {"windows": sql.SQL(windows_relation), "returns": sql.SQL(returns_relation),
              "embeddings": sql.SQL(embeddings_relation), "run_id": sql.Literal(run_id),
              "models": sql.Literal(models), "no_trading_days": sql.Literal(int(NO_TRADING_DAYS)),
              "after_seq": sql.Literal(after_seq)}
    # Each query reads one group of instruments through an index: JIT compilation (on by
    # default in PostgreSQL) would cost more than the query, ~0.1 s a group.
    conn.execute("set jit = off")
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        ranks = conn.execute(sql.SQL(GROUP_SIZES).format(**params)).fetchall()
        seq_ranges = {rank: (first_seq, last_seq) for rank, _, first_seq, last_seq in ranks}
        sizes = [(rank, count) for rank, count, _, _ in ranks]
        if on_staged is not None:
            on_staged(sum(count for _, count in sizes))
        if not ranks:
            return
        dates = conn.execute(sql.SQL(RUN_DATES).format(
            **params, first_seq=sql.Literal(ranks[0][2]),
            last_seq=sql.Literal(ranks[-1][3]))).fetchone()
        for first_rank, last_rank in instrument_groups(sizes, batch_windows):
            group = {**params, "first_seq": sql.Literal(seq_ranges[first_rank][0]),
                     "last_seq": sql.Literal(seq_ranges[last_rank][1])}
            instrument_ids = {int(rank): str(instrument_id) for rank, instrument_id in
                              conn.execute(sql.SQL(INSTRUMENTS).format(**group))}
            assert dates is not None
            any_stored = conn.execute(sql.SQL(ANY_STORED).format(
                **group, instrument_ids=sql.Literal(list(instrument_ids.values())),
                first_date=sql.Literal(dates[0]), last_date=sql.Literal(dates[1]))).fetchone()
            group["stored_models"] = sql.SQL(STORED_MODELS).format(**group) \
                if any_stored and any_stored[0] else sql.SQL("0::bigint")
            bounds = read_copy_rows(conn, sql.SQL(BOUNDS).format(**group), BOUNDS_ROW)
            history = read_copy_rows(conn, sql.SQL(HISTORY).format(**group), HISTORY_ROW)
            for start in range(0, len(bounds), batch_windows):
                yield gather_windows(bounds[start:start + batch_windows], history, window_days,
                                     instrument_ids)
