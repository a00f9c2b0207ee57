"""The original tool's own tables: a run adds the unique key and keeps their settings, reads
their prices whatever their column types, and refuses, naming why, what it cannot store."""

from __future__ import annotations

import contextlib
import datetime as dt
import io

import numpy as np
import psycopg
import pytest
from psycopg import sql

from prometheus.numeric import dedupe
from prometheus.numeric.demo_data import MarketShape, demo_instruments, generate_prices

from conftest import ORIGINAL_COMMAND, Database
from fresh_stack import assert_one_line_error
from reference import assert_vector_matches, reference_vector, reference_window

ORIGINAL_TABLES = """
create table instruments (
    instrument_id text primary key, market_id text, asset_class text, symbol text,
    currency text, status text, listed_on date, sector text
);
create table prices_daily (
    instrument_id text not null, trade_date date not null, open numeric(18, 6),
    high numeric(18, 6), low numeric(18, 6), close numeric, adjusted_close numeric,
    volume numeric, currency text, metadata jsonb,
    primary key (instrument_id, trade_date)
);
create table numeric_window_embeddings (
    embedding_id bigserial primary key, entity_type varchar(32), entity_id varchar(64),
    window_spec jsonb, as_of_date date, model_id varchar(64), vector bytea,
    vector_ref varchar(255), created_at timestamptz default now()
);
"""


def _load_original_tables(db: Database) -> None:
    instruments = demo_instruments(MarketShape())[:420]
    with db.connect() as conn:
        conn.execute(ORIGINAL_TABLES)
        with conn.cursor() as cur:
            with cur.copy("copy instruments (instrument_id, market_id, asset_class, symbol,"
                          " currency, status) from stdin (format csv)") as copy:
                for i in instruments:
                    copy.write(f"{i.instrument_id},{i.market_id},{i.asset_class},"
                               f"{i.instrument_id},{i.currency},{i.status}\n")
            with cur.copy("copy prices_daily (instrument_id, trade_date, open, high, low, close,"
                          " adjusted_close, volume, currency, metadata) from stdin"
                          " (format csv)") as copy:
                for line in generate_prices(MarketShape(), instruments):
                    copy.write(line)


def column_compressions(conn: psycopg.Connection) -> dict[str, str]:
    """pg_attribute.attcompression of the compressible columns ('' = the server default)."""
    rows = conn.execute(
        "select attname::text, attcompression::text from pg_attribute where attrelid ="
        " 'numeric_window_embeddings'::regclass and attname in ('vector', 'window_spec')")
    return dict(rows.fetchall())


def test_a_created_table_compresses_with_lz4(demo_db: Database, original_run) -> None:
    with demo_db.connect() as conn:
        if not conn.execute("select 'lz4' = any(enumvals) from pg_settings"
                            " where name = 'default_toast_compression'").fetchone()[0]:
            pytest.skip("this PostgreSQL was built without lz4")
        assert column_compressions(conn) == {"vector": "l", "window_spec": "l"}
        compressed = conn.execute(
            "select count(*), count(*) filter (where pg_column_compression(vector) = 'lz4')"
            " from numeric_window_embeddings where model_id = 'num-stab-core-v1'"
            " and as_of_date = '2025-01-31'").fetchone()
    assert compressed[0] > 0 and compressed == (compressed[0], compressed[0])


def test_existing_original_tables_get_the_unique_key(empty_db: Database) -> None:
    _load_original_tables(empty_db)
    with empty_db.connect() as conn:
        conn.execute("insert into numeric_window_embeddings (entity_type, entity_id,"
                     " window_spec, as_of_date, model_id, vector) values ('INSTRUMENT',"
                     " 'US_EQ_0001', '{}', '2024-12-31', 'num-stab-core-v1', '\\x00')")
        # The original table allows a row without a model: kept, and not copied for
        # similarity search (whose table requires the key).
        no_model = conn.execute(
            "insert into numeric_window_embeddings (entity_type, entity_id, window_spec,"
            " as_of_date, vector) values ('INSTRUMENT', 'US_EQ_0002', '{}', '2024-11-29', %s)"
            " returning embedding_id", (np.ones(384, "<f4").tobytes(),)).fetchone()[0]
        # numeric holds values no double does, and a text column (volume here, on
        # PostgreSQL 16+) values that are no number: rows rejected for what they are (beyond
        # float32, negative, zero once cast, not a number), not a failed cast that stops the
        # run. A number text with spaces around it, and -1e-400 (-0 once cast), are valid
        # rows. Their days are inside windows checked below.
        planted_values = {"US_EQ_0008": ("close", "1e400", "close_exceeds_float32"),
                          "US_EQ_0015": ("volume", "-1e400", "volume_negative"),
                          "US_EQ_0022": ("close", "1e-400", "close_not_positive"),
                          "US_EQ_0057": ("volume", "-1e-400", None)}
        if conn.execute("select current_setting('server_version_num')::int >= 160000"
                        ).fetchone()[0]:  # before 16 (no pg_input_is_valid) text is cast
            conn.execute("alter table prices_daily alter column volume type text")
            planted_values.update({"US_EQ_0029": ("volume", "N/A", "volume_nan"),
                                   "US_EQ_0036": ("volume", "", "volume_nan"),
                                   "US_EQ_0043": ("volume", " 1e400 ", "volume_exceeds_float32"),
                                   "US_EQ_0050": ("volume", " 1250.5 ", None)})
        planted = [conn.execute(sql.SQL(
            "update prices_daily set {} = %s where instrument_id = %s"
            " and trade_date = (select max(trade_date) from prices_daily"
            " where instrument_id = %s and trade_date <= '2025-01-15')"
            " returning instrument_id, trade_date").format(sql.Identifier(column)),
            (value, instrument_id, instrument_id)).fetchone()
            for instrument_id, (column, value, _) in planted_values.items()]
    result = empty_db.backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 0, result.stderr
    if empty_db.value("select to_regclass('numeric_window_vectors') is not null"):
        assert empty_db.value("select count(*) from numeric_window_vectors") == 416
        assert not empty_db.value("select exists (select from numeric_window_vectors"
                                  " where embedding_id = %s)", (no_model,))
    assert empty_db.value("select count(*) from numeric_window_embeddings"
                          " where model_id is null") == 1
    assert "embedded=416 skipped=4 " in result.stdout  # 420 active equities, 4 too short
    with empty_db.connect() as conn:
        keys = conn.execute(
            "select count(*) from pg_constraint where conrelid ="
            " 'numeric_window_embeddings'::regclass and contype = 'u'").fetchone()
        old = conn.execute("select count(*) from numeric_window_embeddings"
                           " where as_of_date = '2024-12-31'").fetchone()
        stored = conn.execute(
            "select entity_id, vector from numeric_window_embeddings where as_of_date ="
            " '2025-01-31' and model_id = 'num-stab-core-v1' order by entity_id").fetchall()
        assert keys == (1,) and old == (1,)
        for instrument_id, trade_date in planted:
            reason = conn.execute(
                "select rejection_reason from analytics.rejected_prices"
                " where instrument_id = %s and trade_date = %s",
                (instrument_id, trade_date)).fetchone()
            expected = planted_values[instrument_id][2]
            assert reason == ((expected,) if expected else None), instrument_id
        assert column_compressions(conn) == {"vector": "", "window_spec": ""}  # as it was
        assert len(stored) == 416 and planted_values.keys() <= {s[0] for s in stored}
        for instrument_id, vector in stored[::7] + [s for s in stored if s[0] in planted_values]:
            window = reference_window(conn, instrument_id, dt.date(2025, 1, 31), 63)
            assert window is not None
            assert_vector_matches(bytes(vector), reference_vector(window, 384), 63,
                                  instrument_id)


def test_duplicates_from_the_original_tool_stop_the_run(empty_db: Database) -> None:
    _load_original_tables(empty_db)
    insert = ("insert into numeric_window_embeddings (entity_type, entity_id, window_spec,"
              " as_of_date, model_id, vector, created_at) values ('INSTRUMENT', 'US_EQ_0002',"
              " '{}', '2025-01-31', 'num-stab-core-v1', %s, %s)")
    with empty_db.connect() as conn:
        conn.execute(insert, (b"old", dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc)))
        conn.execute(insert, (b"new", dt.datetime(2025, 2, 2, tzinfo=dt.timezone.utc)))
    result = empty_db.backfill(*ORIGINAL_COMMAND)
    assert_one_line_error(result, 1, "1 duplicated", "dedupe_numeric_embeddings --apply")
    with empty_db.connect() as conn:
        assert conn.execute("select count(*) from numeric_window_embeddings").fetchone() == (2,)
    out = io.StringIO()
    with empty_db.environment(), contextlib.redirect_stdout(out):
        assert dedupe.main(["--apply"]) == 0
    assert "deleted 1 older duplicate rows" in out.getvalue()
    with empty_db.connect() as conn:
        kept = conn.execute("select vector from numeric_window_embeddings").fetchall()
    assert [bytes(r[0]) for r in kept] == [b"new"]
    result = empty_db.backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 0, result.stderr


def test_an_instrument_id_too_long_to_store_is_named(empty_db: Database) -> None:
    _load_original_tables(empty_db)  # instrument_id is text there; entity_id varchar(64)
    long_id = "US_EQ_0000_" + "x" * 60
    with empty_db.connect() as conn:
        conn.execute("insert into instruments (instrument_id, market_id, asset_class, status)"
                     " values (%s, 'US_EQ', 'EQUITY', 'ACTIVE')", (long_id,))
        conn.execute("insert into prices_daily (instrument_id, trade_date, close, volume)"
                     " select %s, trade_date, close, volume from prices_daily"
                     " where instrument_id = 'US_EQ_0001'", (long_id,))
    result = empty_db.backfill(*ORIGINAL_COMMAND)
    assert_one_line_error(result, 1, "value too long", "COPY numeric_window_embeddings",
                          "column entity_id", f"{long_id!r} (71 characters)")
    assert empty_db.value("select count(*) from numeric_window_embeddings") == 0  # one batch


