"""A deterministic synthetic market in the original historical_db layout, loaded with COPY.

`prometheus-demo-data load` creates `instruments` and `prices_daily` (if missing) and fills
them with a market that exercises every path of the pipeline: 520 ACTIVE equities in US_EQ,
inactive and non-equity instruments, a second market, holidays and missing days, instruments
with short history (filled windows and skips), a stale instrument and rejected rows.
`prometheus-demo-data load-csv` streams a user's own CSV files into the same tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from prometheus.numeric.connection import resolve_server
from prometheus.numeric.errors import OneLineParser, PipelineError, UsageError, first_line

SOURCE_DDL = """
create schema if not exists {schema};
create table if not exists {schema}.instruments (
    instrument_id varchar(64) primary key,
    market_id varchar(32) not null,
    asset_class varchar(32) not null,
    symbol varchar(32),
    currency varchar(8),
    status varchar(16) not null default 'ACTIVE',
    metadata jsonb
);
create table if not exists {schema}.prices_daily (
    instrument_id varchar(64) not null,
    trade_date date not null,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    adjusted_close double precision,
    volume double precision,
    currency varchar(8),
    metadata jsonb,
    primary key (instrument_id, trade_date)
);
"""

# Market holidays of the synthetic calendar (weekdays with no trading at all).
HOLIDAYS = frozenset(dt.date.fromisoformat(day) for day in (
    "2022-01-17", "2022-02-21", "2022-04-15", "2022-05-30", "2022-07-04", "2022-09-05",
    "2022-11-24", "2022-12-26", "2023-01-02", "2023-01-16", "2023-02-20", "2023-04-07",
    "2023-05-29", "2023-06-19", "2023-07-04", "2023-09-04", "2023-11-23", "2023-12-25",
    "2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27", "2024-06-19",
    "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25", "2025-01-01", "2025-01-09",
    "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26", "2025-06-19", "2025-07-04",
))


@dataclass(frozen=True)
class MarketShape:
    """How big a synthetic market to build."""

    active_equities: int = 520
    start_date: dt.date = dt.date(2024, 1, 2)
    end_date: dt.date = dt.date(2025, 2, 28)
    seed: int = 20250131


def trading_calendar(start: dt.date, end: dt.date) -> np.ndarray:
    days = np.arange(np.datetime64(start), np.datetime64(end) + 1, dtype="datetime64[D]")
    weekdays = np.is_busday(days)
    holidays = np.isin(days, np.array(sorted(HOLIDAYS), dtype="datetime64[D]"))
    return days[weekdays & ~holidays]


@dataclass
class Instrument:
    instrument_id: str
    market_id: str
    asset_class: str
    status: str
    currency: str
    first_date: dt.date | None = None
    last_date: dt.date | None = None


STOPPED_INDEX = 400  # the equity that stops trading: the last of the special cases below
MIN_ACTIVE_EQUITIES = STOPPED_INDEX + 1


def demo_instruments(shape: MarketShape) -> list[Instrument]:
    """The instrument list: the shape's equities plus the special cases, in a fixed order."""
    out = [Instrument(f"US_EQ_{i:04d}", "US_EQ", "EQUITY", "ACTIVE", "USD")
           for i in range(1, shape.active_equities + 1)]
    # Short histories near the demo as-of date 2025-01-31 (window 63, min_rows 54):
    # listed early November -> 54..62 rows, a front-filled window; listed in January -> skip.
    for index, listed in enumerate(("2024-11-01", "2024-11-05", "2024-11-08", "2024-11-12")):
        out[10 + index * 50].first_date = dt.date.fromisoformat(listed)
    for index, listed in enumerate(("2025-01-06", "2025-01-21", "2024-12-02")):
        out[20 + index * 60].first_date = dt.date.fromisoformat(listed)
    # Stopped trading: a stale window on 2025-01-31.
    out[STOPPED_INDEX].last_date = dt.date(2025, 1, 15)
    out += [Instrument(f"US_EQ_X{i:03d}", "US_EQ", "EQUITY", "INACTIVE", "USD")
            for i in range(1, 16)]
    out += [Instrument(f"US_ETF_{i:03d}", "US_EQ", "ETF", "ACTIVE", "USD") for i in range(1, 11)]
    out += [Instrument(f"EU_EQ_{i:04d}", "EU_EQ", "EQUITY", "ACTIVE", "EUR") for i in range(1, 61)]
    return out


DEMO_AS_OF = dt.date(2025, 1, 31)  # the as-of date of the README's command

# Rows made invalid on purpose, inside the demo windows: (instrument index, trading days back
# from DEMO_AS_OF, close, volume); None keeps the generated value, "null" stores NULL.
BAD_ROWS = (
    (3, 5, 0.0, None),
    (3, 9, -4.25, None),
    (7, 2, float("nan"), None),
    (7, 30, float("inf"), None),
    (15, 1, "null", None),
    (15, 12, None, -100.0),
    (33, 3, None, float("nan")),
    (33, 40, None, float("-inf")),
    (44, 0, None, "null"),
    (3, 70, 0.0, None),  # outside the window's last 63 rows, inside its lookback
    (45, 17, -0.0, None),
    (46, 64, float("-inf"), None),
    (47, 8, None, 1e39),
)


def generate_prices(shape: MarketShape, instruments: list[Instrument]) -> Iterator[str]:
    """CSV lines of prices_daily, instrument by instrument, deterministic for a seed."""
    rng = np.random.default_rng(shape.seed)
    calendar = trading_calendar(shape.start_date, shape.end_date)
    bad_by_instrument: dict[int, list[tuple[int, object, object]]] = {}
    for index, from_end, close, volume in BAD_ROWS:
        bad_by_instrument.setdefault(index, []).append((from_end, close, volume))
    for index, instrument in enumerate(instruments):
        days = calendar
        if instrument.first_date:
            days = days[days >= np.datetime64(instrument.first_date)]
        if instrument.last_date:
            days = days[days <= np.datetime64(instrument.last_date)]
        # About 1.5% of an instrument's trading days are missing (halts, data gaps).
        days = days[rng.random(days.size) >= 0.015]
        steps = rng.normal(0.0003, 0.018, days.size)
        closes = np.round(rng.uniform(5, 400) * np.exp(np.cumsum(steps)), 4)
        volumes = np.round(rng.lognormal(13, 1.0, days.size))
        opens = np.round(closes * (1 + rng.normal(0, 0.004, days.size)), 4)
        closes_text = [repr(float(c)) for c in closes]
        volumes_text = [repr(float(v)) for v in volumes]
        last_in_window = int(np.searchsorted(days, np.datetime64(DEMO_AS_OF), side="right")) - 1
        for back, close, volume in bad_by_instrument.get(index, ()):
            row = last_in_window - back
            if row < 0:  # a negative index would land on another day, at the end
                raise UsageError(
                    f"--start-date {shape.start_date} leaves too few trading days before "
                    f"{min(shape.end_date, DEMO_AS_OF)} for the demo's invalid rows; start earlier")
            if close is not None:
                closes_text[row] = "" if close == "null" else _float_text(close)
            if volume is not None:
                volumes_text[row] = "" if volume == "null" else _float_text(volume)
        for day, open_, close, volume in zip(days, opens, closes_text, volumes_text, strict=True):
            yield (f"{instrument.instrument_id},{day},{float(open_)!r},,,{close},{close},{volume},"
                   f"{instrument.currency},\n")


def _float_text(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    if np.isnan(number):
        return "NaN"
    if np.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return repr(number)


def _copy_lines(cursor: psycopg.Cursor, statement: sql.Composed, lines: Iterator[str]) -> None:
    buffer = io.StringIO()
    with cursor.copy(statement) as copy:
        for line in lines:
            buffer.write(line)
            if buffer.tell() > 1 << 20:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def create_source_tables(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(sql.SQL(SOURCE_DDL).format(schema=sql.Identifier(schema)))


def load_demo(conn: psycopg.Connection, schema: str, shape: MarketShape) -> tuple[int, int]:
    """Replace the tables' contents with the demo market; returns (instruments, price rows)."""
    instruments = demo_instruments(shape)
    with conn.transaction(), conn.cursor() as cur:
        create_source_tables(conn, schema)
        cur.execute(sql.SQL("truncate {}.prices_daily, {}.instruments").format(
            sql.Identifier(schema), sql.Identifier(schema)))
        _copy_lines(cur, sql.SQL(
            "copy {}.instruments (instrument_id, market_id, asset_class, symbol, currency, status)"
            " from stdin (format csv)").format(sql.Identifier(schema)),
            (f"{i.instrument_id},{i.market_id},{i.asset_class},{i.instrument_id[-6:]},"
             f"{i.currency},{i.status}\n" for i in instruments))
        _copy_lines(cur, sql.SQL(
            "copy {}.prices_daily (instrument_id, trade_date, open, high, low, close,"
            " adjusted_close, volume, currency, metadata) from stdin (format csv)").format(
            sql.Identifier(schema)), generate_prices(shape, instruments))
        cur.execute(sql.SQL("select count(*) from {}.prices_daily").format(sql.Identifier(schema)))
        price_rows = cur.fetchone()[0]  # type: ignore[index]
    conn.execute(sql.SQL("analyze {}.prices_daily").format(sql.Identifier(schema)))
    return len(instruments), price_rows


def load_csv(conn: psycopg.Connection, schema: str, table: str, path: Path) -> int:
    """Stream a CSV file with a header row into instruments or prices_daily with COPY."""
    with path.open("rb") as handle:
        header = handle.readline().decode().strip()
        columns = [name.strip().strip('"') for name in header.split(",")]
        with conn.transaction(), conn.cursor() as cur:
            statement = sql.SQL("copy {}.{} ({}) from stdin (format csv)").format(
                sql.Identifier(schema), sql.Identifier(table),
                sql.SQL(", ").join(sql.Identifier(name) for name in columns))
            with cur.copy(statement) as copy:
                while block := handle.read(1 << 20):
                    copy.write(block)
            return cur.rowcount


def _active_equities(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < MIN_ACTIVE_EQUITIES:
        raise argparse.ArgumentTypeError(
            f"the demo's special cases need at least {MIN_ACTIVE_EQUITIES}, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="prometheus-demo-data",
        description="Load the synthetic demo market, or your own CSV files, into historical_db.",
    )
    parser.add_argument("--schema", default="public", help="schema of the source tables")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("load", help="(re)load the deterministic demo market")
    demo.add_argument("--instruments", type=_active_equities,
                      default=MarketShape.active_equities,
                      help=f"ACTIVE equities in US_EQ (default 520, at least "
                           f"{MIN_ACTIVE_EQUITIES})")
    demo.add_argument("--start-date", type=dt.date.fromisoformat,
                      default=MarketShape.start_date)
    demo.add_argument("--end-date", type=dt.date.fromisoformat, default=MarketShape.end_date)
    own = commands.add_parser("load-csv", help="append CSV files with a header row")
    own.add_argument("--instruments-csv", type=Path)
    own.add_argument("--prices-csv", type=Path)
    args = parser.parse_args(argv)
    if args.command == "load" and args.start_date > args.end_date:
        demo.error(f"--start-date {args.start_date} is after --end-date {args.end_date}")
    try:
        resolve_server()  # one clear line when no server is reachable
        with psycopg.connect(autocommit=True) as conn:
            if args.command == "load":
                shape = MarketShape(args.instruments, args.start_date, args.end_date)
                instruments, prices = load_demo(conn, args.schema, shape)
                print(f"loaded demo market: instruments={instruments} price_rows={prices}")
            else:
                create_source_tables(conn, args.schema)
                for table, path in (("instruments", args.instruments_csv),
                                    ("prices_daily", args.prices_csv)):
                    if path is not None:
                        rows = load_csv(conn, args.schema, table, path)
                        print(f"loaded {table}: rows={rows} from {path}")
    except (PipelineError, psycopg.Error, OSError) as exc:
        print(f"prometheus-demo-data: error: {first_line(exc)}",
              file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
