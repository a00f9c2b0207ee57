"""An independent numpy computation of SPEC.md, to check the pipeline's vectors against.

It shares no code with the pipeline: it reads the raw source tables and applies the
contract's rules (selection, validity, log-returns, window, fill, encoding) directly.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import psycopg

FLOAT32_INF_THRESHOLD = (2 - 2**-24) * 2.0**127  # doubles at or above round to float32 inf


@dataclass
class ReferenceWindow:
    instrument_id: str
    rows_observed: int
    rows_filled: int
    start_date: dt.date
    end_date: dt.date
    values: np.ndarray  # (window_days, 3) float64


def select_instruments(conn: psycopg.Connection, market_id: str | None, limit: int | None,
                       offset: int, explicit: list[str]) -> list[str]:
    rows = conn.execute(
        "select instrument_id, market_id, asset_class, status from instruments").fetchall()
    chosen: list[str] = []
    if market_id is not None:
        members = sorted(r[0] for r in rows
                         if r[1] == market_id and r[2] == "EQUITY" and r[3] == "ACTIVE")
        members = members[offset:]
        chosen = members[:limit] if limit is not None else members
    for instrument_id in explicit:
        if instrument_id not in chosen:
            chosen.append(instrument_id)
    return chosen


def load_history(conn: psycopg.Connection, instrument_id: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # As text, parsed by Python: a numeric column may hold values no double holds (1e400),
    # a text column values that are no number.
    # A double's text is exact (its shortest round-trip digits) with extra_float_digits >= 1.
    conn.execute("set extra_float_digits = 1")
    rows = conn.execute(
        "select trade_date, close::text, volume::text from prices_daily "
        "where instrument_id = %s order by trade_date", (instrument_id,)).fetchall()
    dates = np.array([r[0] for r in rows], dtype="datetime64[D]")
    closes = np.array([as_number(r[1]) for r in rows], dtype=np.float64)
    volumes = np.array([as_number(r[2]) for r in rows], dtype=np.float64)
    return dates, closes, volumes


def as_number(text: str | None) -> float:
    """A price's text as a number; NULL, or a text that is no number ('N/A'), as NaN: not
    finite, so its row is not valid (SPEC "Daily features"). Python's grammar is not
    PostgreSQL's (Unicode digits, '0x10'); the texts the tests plant read alike in both."""
    try:
        return math.nan if text is None else float(text)
    except ValueError:
        return math.nan


def valid_mask(closes: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    return (np.isfinite(closes) & (closes > 0) & (closes < FLOAT32_INF_THRESHOLD)
            & np.isfinite(volumes) & (volumes >= 0) & (volumes < FLOAT32_INF_THRESHOLD))


def reference_window(conn: psycopg.Connection, instrument_id: str, as_of: dt.date,
                     window_days: int, min_days: int | None = None) -> ReferenceWindow | None:
    """The SPEC window, or None when the instrument is skipped (insufficient_history)."""
    dates, closes, volumes = load_history(conn, instrument_id)
    keep = valid_mask(closes, volumes)
    dates, closes, volumes = dates[keep], closes[keep], volumes[keep]
    log_returns = np.zeros_like(closes)
    if closes.size > 1:
        log_returns[1:] = np.log(closes[1:] / closes[:-1])
    lookback_days = 3 * window_days
    min_rows = min_days if min_days is not None else max(1, math.floor(0.87 * window_days))
    in_range = (dates >= np.datetime64(as_of - dt.timedelta(days=lookback_days))) & (
        dates <= np.datetime64(as_of))
    index = np.flatnonzero(in_range)[-window_days:]
    if index.size < min_rows:
        return None
    filled = window_days - index.size
    observed = np.stack([closes[index], volumes[index], log_returns[index]], axis=1)
    fill = np.tile([closes[index[0]], volumes[index[0]], 0.0], (filled, 1))
    return ReferenceWindow(
        instrument_id=instrument_id,
        rows_observed=int(index.size),
        rows_filled=filled,
        start_date=dates[index[0]].astype(dt.date),
        end_date=dates[index[-1]].astype(dt.date),
        values=np.concatenate([fill, observed]).reshape(window_days, 3),
    )


def reference_vector(window: ReferenceWindow, dim: int | None) -> np.ndarray:
    flat = window.values.reshape(-1).astype(np.float32)
    if dim is None:
        return flat
    return np.concatenate([flat, np.zeros(dim - flat.size, dtype=np.float32)])


def assert_vector_matches(stored: bytes, expected: np.ndarray, window_days: int,
                          label: str) -> None:
    """close, volume and padding bit-exact; log_return within 1 float32 ulp (SPEC)."""
    actual = np.frombuffer(stored, dtype="<f4")
    assert actual.shape == expected.shape, f"{label}: {actual.shape} != {expected.shape}"
    actual_bits = actual.view(np.int32).astype(np.int64)
    expected_bits = expected.astype("<f4").view(np.int32).astype(np.int64)
    position = np.arange(actual.size)
    is_log_return = (position % 3 == 2) & (position < 3 * window_days)
    exact = actual_bits == expected_bits
    near = np.abs(actual_bits - expected_bits) <= 1
    bad = np.flatnonzero(~np.where(is_log_return, near, exact))
    assert bad.size == 0, (
        f"{label}: {bad.size} values differ, first at {bad[0]}: "
        f"{actual[bad[0]]!r} != {expected[bad[0]]!r}")


def reference_inputs(conn: psycopg.Connection, instrument_id: str, as_of: dt.date,
                     window_days: int) -> tuple | None:
    """What SPEC "Outdated vectors" compares: the window's trade dates, closes and volumes,
    and the close before its first row (None when there is none); None when skipped."""
    dates, closes, volumes = load_history(conn, instrument_id)
    keep = valid_mask(closes, volumes)
    dates, closes, volumes = dates[keep], closes[keep], volumes[keep]
    in_range = (dates >= np.datetime64(as_of - dt.timedelta(days=3 * window_days))) & (
        dates <= np.datetime64(as_of))
    index = np.flatnonzero(in_range)[-window_days:]
    if index.size < max(1, math.floor(0.87 * window_days)):
        return None
    previous = float(closes[index[0] - 1]) if index[0] > 0 else None
    return (tuple(dates[index].tolist()), tuple(closes[index].tolist()),
            tuple(volumes[index].tolist()), previous)
