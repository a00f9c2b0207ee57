"""In-process measurements: (b) the package's encode+write step, (c) the original per-window
approach, (d) the binary COPY ceiling. Each writes into its own fresh copy of the embeddings
table (same columns, same unique key, same indexes), so none pays for another's rows.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.types.json import Jsonb

from prometheus.numeric.backfill import Relations, encode_and_store
from prometheus.numeric.progress import Progress
from prometheus.numeric.registry import ModelSpec
from prometheus.numeric.run_request import BackfillRequest

BENCH_SCHEMA = "bench"
PG_EPOCH = dt.date(2000, 1, 1)
COPY_BATCH_ROWS = 20_000
PROGRESS_EVERY_SECONDS = 10.0


@dataclass
class Throughput:
    rows: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def fresh_table(conn: psycopg.Connection, embeddings: str, name: str) -> str:
    """An empty copy of the embeddings table: columns, identity, unique key and indexes."""
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(BENCH_SCHEMA)))
    target = sql.Identifier(BENCH_SCHEMA, name)
    conn.execute(sql.SQL("drop table if exists {} cascade").format(target))
    conn.execute(sql.SQL("create table {} (like {} including all)").format(
        target, sql.SQL(embeddings)))
    return target.as_string(conn)


def fresh_vectors(conn: psycopg.Connection, vectors: str, embeddings: str, name: str) -> str:
    """An empty copy of the pgvector companion, its rows deleted with embeddings' rows."""
    target = sql.Identifier(BENCH_SCHEMA, name)
    conn.execute(sql.SQL("drop table if exists {}").format(target))
    conn.execute(sql.SQL("create table {} (like {} including all)").format(
        target, sql.SQL(vectors)))
    conn.execute(sql.SQL("alter table {} add foreign key (embedding_id) references {}"
                         " (embedding_id) on delete cascade").format(target, sql.SQL(embeddings)))
    return target.as_string(conn)


def _progress(label: str, done: int, started: float) -> None:
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    print(f"  [{label}] {done:,} rows in {elapsed:.1f} s ({rate:,.0f}/s)", file=sys.stderr,
          flush=True)


# (b) ------------------------------------------------------------------------------------


class _BenchProgress(Progress):
    """The CLI's progress object, reporting as the bench's other in-process steps do."""

    printed_at = float("-inf")  # the first batch is always printed

    def advance(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self.printed_at >= PROGRESS_EVERY_SECONDS:
            self.printed_at = time.monotonic()
            _progress("encode+write", self.done, self.started)


def encode_and_write(relations: Relations, target: str, run_id: str, specs: list[ModelSpec],
                     window_days: int, windows: int, vectors_target: str | None = None
                     ) -> Throughput:
    """The CLI's own encode+write step (backfill.encode_and_store) on the windows run_id
    staged, writing into target instead of the embeddings table: every key is new there, as
    in a first backfill."""
    request = BackfillRequest(model_ids=[spec.model_id for spec in specs],
                              window_days=window_days)
    progress = _BenchProgress(run_id, windows * len(specs))
    started = time.monotonic()
    # The pgvector companion too, where the checkout has one (vectors_target).
    targets = {"embeddings": target}
    if hasattr(relations, "vectors"):
        targets["vectors"] = vectors_target  # type: ignore[assignment]
    written = encode_and_store(replace(relations, **targets), run_id, specs, request, progress)
    seconds = time.monotonic() - started
    # An int before store.Written (vectors, refreshed) existed: either is read.
    return Throughput(written if isinstance(written, int) else written.vectors, seconds)


# (c) ------------------------------------------------------------------------------------

# The original tool, one window at a time: fetch the window's rows, build the vector in
# Python, INSERT it, commit. One extra row is fetched so the oldest row has a log-return.
# Valid rows as the staging has them: positive/non-negative, finite as float32 (NaN excluded).
FETCH_ROWS = """
select close, volume from prices_daily
where instrument_id = %s and trade_date between %s and %s
    and close > 0 and volume >= 0 and close < 3.4e38 and volume < 3.4e38
order by trade_date desc
limit %s
"""

INSERT_ONE = """
insert into {target}
    (entity_type, entity_id, window_spec, as_of_date, model_id, vector, vector_ref, created_at)
values ('INSTRUMENT', %s, %s, %s, %s, %s, null, now())
"""


def _original_vector(rows: list[tuple[float, float]], window_days: int,
                     dim: int) -> NDArray[np.float32]:
    closes = np.array([row[0] for row in reversed(rows)], dtype=np.float64)
    volumes = np.array([row[1] for row in reversed(rows)], dtype=np.float64)
    returns = np.zeros_like(closes)
    returns[1:] = np.log(closes[1:] / closes[:-1])
    features = np.stack([closes, volumes, returns], axis=-1)[-window_days:]
    if len(features) < window_days:  # fill at the front with the oldest row, return 0
        fill = np.repeat(features[:1], window_days - len(features), axis=0)
        fill[:, 2] = 0.0
        features = np.concatenate([fill, features])
    vector = np.zeros(dim, dtype="<f4")
    vector[: features.size] = features.ravel().astype("<f4")
    return vector


def original_approach(conninfo: str, target: str, windows: list[tuple[str, dt.date]],
                      spec: ModelSpec, window_days: int) -> Throughput:
    """The baseline: per window one query, one INSERT, one commit (psycopg 3, plain Python)."""
    lookback = dt.timedelta(days=3 * window_days)
    min_rows = max(1, (87 * window_days) // 100)
    dim = spec.vector_dim(window_days)
    insert = sql.SQL(INSERT_ONE).format(target=sql.SQL(target))
    written = 0
    started = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        for index, (instrument_id, as_of) in enumerate(windows, 1):
            rows = conn.execute(FETCH_ROWS, (instrument_id, as_of - lookback, as_of,
                                             window_days + 1)).fetchall()
            if len(rows) >= min_rows:
                vector = _original_vector(rows, window_days, dim)
                window_spec = {"window_days": window_days, "entity_type": "INSTRUMENT",
                               "rows_observed": min(len(rows), window_days),
                               "min_rows": min_rows, "lookback_days": 3 * window_days,
                               "encoder": spec.encoder, "dim": dim}
                conn.execute(insert, (instrument_id, Jsonb(window_spec), as_of, spec.model_id,
                                      vector.tobytes()))
                written += 1
            conn.commit()
            if index % 1000 == 0:
                _progress("original", index, started)
    # Rate per window asked for, as the original tool's windows/s was counted.
    return Throughput(len(windows), time.monotonic() - started)


def baseline_windows(conn: psycopg.Connection, market_id: str, limit: int,
                     start: dt.date, end: dt.date, count: int
                     ) -> tuple[list[tuple[str, dt.date]], int]:
    """Evenly spaced as-of dates of the range, all selected instruments per date: a few runs
    of the original single-date command, about `count` windows in all. Also returns how
    many windows the whole range asks for (instruments x trading days)."""
    instruments = [row[0] for row in conn.execute(
        "select instrument_id from instruments where market_id = %s and asset_class = 'EQUITY'"
        " and status = 'ACTIVE' order by instrument_id limit %s", (market_id, limit))]
    days = [row[0] for row in conn.execute(
        "select distinct trade_date from prices_daily where trade_date between %s and %s"
        " order by 1", (start, end))]
    wanted = max(1, -(-count // max(1, len(instruments))))
    picks = np.linspace(0, len(days) - 1, num=min(wanted, len(days))).round().astype(int)
    sample = [(instrument, days[i]) for i in dict.fromkeys(picks.tolist())
              for instrument in instruments]
    return sample, len(instruments) * len(days)


# (d) ------------------------------------------------------------------------------------


def _copy_row_dtype(entity_bytes: int, spec_bytes: int, model_bytes: int,
                    vector_bytes: int) -> np.dtype:
    """One COPY BINARY row of (entity_type, entity_id, window_spec, as_of_date, model_id,
    vector, vector_ref, created_at) with fixed-width values, so numpy builds whole batches."""
    return np.dtype([
        ("fields", ">i2"),
        ("type_len", ">i4"), ("type", "S10"),
        ("id_len", ">i4"), ("id", f"S{entity_bytes}"),
        ("spec_len", ">i4"), ("spec_version", "u1"), ("spec", f"S{spec_bytes}"),
        ("date_len", ">i4"), ("date", ">i4"),
        ("model_len", ">i4"), ("model", f"S{model_bytes}"),
        ("vector_len", ">i4"), ("vector", f"V{vector_bytes}"),
        ("ref_len", ">i4"),
        ("created_len", ">i4"), ("created", ">i8"),
    ])


@dataclass(frozen=True)
class CeilingRows:
    """What the ceiling's rows look like: real stored vectors and window_spec when available."""

    vectors: NDArray[np.float32]  # (k, dim): cycled through the rows
    window_spec: str
    model_id: str
    instruments: int
    first_date: dt.date


def copy_ceiling(conninfo: str, target: str, total_rows: int, shape: CeilingRows) -> Throughput:
    """Binary COPY of total_rows rows into target in one COPY: the fastest way in."""
    entity_ids = np.array([f"US_EQ_{i:04d}".encode() for i in range(shape.instruments)])
    spec = shape.window_spec.encode()
    model = shape.model_id.encode()
    vector_bytes = shape.vectors.shape[1] * 4
    dtype = _copy_row_dtype(entity_ids.dtype.itemsize, len(spec), len(model), vector_bytes)
    vectors = np.ascontiguousarray(shape.vectors, dtype="<f4").view(f"V{vector_bytes}")[:, 0]
    first_day = (shape.first_date - PG_EPOCH).days
    now_us = int((time.time() - 946_684_800) * 1_000_000)
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    columns = ("entity_type, entity_id, window_spec, as_of_date, model_id, vector, vector_ref,"
               " created_at")
    started = time.monotonic()
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        with cur.copy(sql.SQL("copy {} ({}) from stdin (format binary)").format(
                sql.SQL(target), sql.SQL(columns))) as copy:
            copy.write(header)
            for first in range(0, total_rows, COPY_BATCH_ROWS):
                keys = np.arange(first, min(total_rows, first + COPY_BATCH_ROWS))
                rows = np.empty(keys.size, dtype=dtype)
                rows["fields"] = 8
                rows["type_len"], rows["type"] = 10, b"INSTRUMENT"
                rows["id_len"], rows["id"] = entity_ids.dtype.itemsize, \
                    entity_ids[keys % shape.instruments]
                rows["spec_len"], rows["spec_version"], rows["spec"] = len(spec) + 1, 1, spec
                # instrument-major keys within a date: unique (entity_id, as_of_date) pairs
                rows["date_len"], rows["date"] = 4, first_day + keys // shape.instruments
                rows["model_len"], rows["model"] = len(model), model
                rows["vector_len"], rows["vector"] = vector_bytes, \
                    vectors[keys % len(vectors)]
                rows["ref_len"] = -1  # NULL vector_ref
                rows["created_len"], rows["created"] = 8, now_us
                copy.write(rows.tobytes())
                if (first // COPY_BATCH_ROWS) % 5 == 4:
                    _progress("COPY ceiling", first + keys.size, started)
            copy.write(b"\xff\xff")
        conn.commit()
    return Throughput(total_rows, time.monotonic() - started)


def ceiling_rows(conn: psycopg.Connection, embeddings: str, model_id: str, dim: int,
                 instruments: int, first_date: dt.date) -> CeilingRows:
    """Up to 1,000 real stored vectors and one real window_spec, so the ceiling's rows have
    the bytes (and compressibility) of the pipeline's; synthetic ones if none are stored."""
    stored = conn.execute(sql.SQL(
        "select vector, window_spec::text from {} where model_id = %s limit 1000").format(
        sql.SQL(embeddings)), (model_id,)).fetchall()
    if stored and all(len(row[0]) == dim * 4 for row in stored):
        vectors = np.stack([np.frombuffer(row[0], dtype="<f4") for row in stored])
        return CeilingRows(vectors, stored[0][1], model_id, instruments, first_date)
    rng = np.random.default_rng(0)
    vectors = np.zeros((1000, dim), dtype="<f4")
    vectors[:, :189] = rng.lognormal(3, 1, (1000, 189))
    spec = ('{"dim": 384, "encoder": "pad_to_dim", "features": ["close", "volume", '
            '"log_return"], "min_rows": 54, "end_date": "2025-01-31", "start_date": '
            '"2024-10-30", "window_days": 63, "entity_type": "INSTRUMENT", "rows_filled": 0, '
            '"lookback_days": 189, "rows_observed": 63}')
    return CeilingRows(vectors, spec, model_id, instruments, first_date)
