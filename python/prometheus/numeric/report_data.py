"""What the coverage report draws, read from the database: the embedding_coverage mart over a
date range, one instrument's stored window decoded back into its three feature series, and
the nearest stored window of another instrument (similar_windows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.errors import PipelineError, first_line
from prometheus.numeric.registry import FEATURES


@dataclass
class CoverageSeries:
    as_of_dates: list[dt.date]
    embedded: np.ndarray
    skipped_insufficient_history: np.ndarray
    missing_vector: np.ndarray
    stale: np.ndarray
    rejected_rows: np.ndarray


@dataclass
class InstrumentWindow:
    instrument_id: str
    as_of_date: dt.date
    start_date: dt.date | None
    end_date: dt.date | None
    rows_filled: int
    currency: str | None
    features: np.ndarray  # (window_days, 3): close, volume, log_return, oldest row first

    @property
    def window_days(self) -> int:
        return int(self.features.shape[0])


def read_coverage(conn: psycopg.Connection, coverage_relation: str, model_id: str,
                  start_date: dt.date, end_date: dt.date) -> CoverageSeries:
    rows = conn.execute(
        sql.SQL(queries.COVERAGE_QUERY).format(coverage=sql.SQL(coverage_relation)),
        {"model_id": model_id, "start_date": start_date, "end_date": end_date},
    ).fetchall()
    if not rows:
        raise PipelineError(f"no coverage for model {model_id} between {start_date} and "
                            f"{end_date}: run the backfill for that range first")
    columns = list(zip(*rows, strict=True))
    return CoverageSeries(
        as_of_dates=list(columns[0]),
        **{name: np.array(values, dtype=np.int64) for name, values in zip(
            ("embedded", "skipped_insufficient_history", "missing_vector", "stale",
             "rejected_rows"), columns[1:], strict=True)},
    )


def read_instrument_window(conn: psycopg.Connection, embeddings_relation: str,
                           instruments_relation: str, model_id: str, instrument_id: str,
                           start_date: dt.date, end_date: dt.date) -> InstrumentWindow:
    row = conn.execute(
        sql.SQL(queries.WINDOW_QUERY).format(embeddings=sql.SQL(embeddings_relation),
                                     instruments=sql.SQL(instruments_relation)),
        {"model_id": model_id, "instrument_id": instrument_id, "start_date": start_date,
         "end_date": end_date},
    ).fetchone()
    if row is None:
        raise PipelineError(f"no stored {model_id} vector for instrument {instrument_id} "
                            f"between {start_date} and {end_date}")
    as_of_date, vector, window_days, rows_filled, start, end, currency = row
    # Another tool's row (the original one wrote window_spec '{}') holds no window to draw.
    size = window_days * len(FEATURES) if window_days and window_days > 0 else 0
    if not size or vector is None or len(vector) < size * 4:
        raise PipelineError(
            f"the stored {model_id} vector of {instrument_id} on {as_of_date} was not written "
            f"by this backfill (no window_days, or a shorter vector): re-run the backfill "
            f"for that date")
    values = np.frombuffer(bytes(vector), dtype="<f4", count=size)
    return InstrumentWindow(
        instrument_id=instrument_id, as_of_date=as_of_date, start_date=start, end_date=end,
        rows_filled=rows_filled, currency=currency,
        features=values.reshape(window_days, len(FEATURES)).astype(np.float64),
    )


def read_nearest(conn: psycopg.Connection, embeddings_relation: str, embeddings_schema: str,
                 instruments_relation: str, model_id: str,
                 window: InstrumentWindow) -> tuple[InstrumentWindow, float]:
    """The stored window of another instrument nearest to window (similar_windows, in the
    embeddings' schema), and its cosine distance. PipelineError when similarity search
    cannot answer for it (no pgvector, the vector not copied there yet) or no other
    instrument's window is stored; any other database error propagates."""
    function = sql.Identifier(embeddings_schema, "similar_windows")
    try:
        with conn.transaction():
            row = conn.execute(
                sql.SQL(queries.NEAREST_QUERY).format(similar_windows=function),
                {"instrument_id": window.instrument_id, "as_of_date": window.as_of_date,
                 "model_id": model_id}).fetchone()
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.NoDataFound) as exc:
        raise PipelineError(first_line(exc)) from exc
    if row is None:
        raise PipelineError(f"no stored {model_id} window of another instrument")
    entity_id, as_of_date, distance = row
    neighbour = read_instrument_window(conn, embeddings_relation, instruments_relation,
                                       model_id, entity_id, as_of_date, as_of_date)
    return neighbour, float(distance)
