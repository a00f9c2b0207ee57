"""Keeps the newest row per (entity_type, entity_id, as_of_date, model_id) in a
numeric_window_embeddings table the original tool filled with duplicates, so that the
unique key can be added. Dry run by default; --apply deletes in one transaction."""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.connection import resolve_server
from prometheus.numeric.errors import PipelineError, first_line


def default_schema() -> str:
    return os.environ.get("EMBEDDINGS_SCHEMA") or os.environ.get("HISTORICAL_DB_SCHEMA") \
        or "public"


def dedupe(conn: psycopg.Connection, schema: str, apply: bool) -> int:
    """The number of older duplicate rows (deleted when apply is true)."""
    table = sql.Identifier(schema, "numeric_window_embeddings")
    with conn.transaction():
        conn.execute(sql.SQL(queries.LOCK_FOR_DEDUPE).format(table=table))
        ranked = sql.SQL(queries.RANKED_DUPLICATES).format(table=table)
        if not apply:
            row = conn.execute(sql.SQL(queries.COUNT_DUPLICATES).format(ranked=ranked)
                               ).fetchone()
            return int(row[0]) if row else 0
        cur = conn.execute(sql.SQL(queries.DELETE_DUPLICATES).format(table=table,
                                                                     ranked=ranked))
        return cur.rowcount


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dedupe_numeric_embeddings",
        description="Keep the newest row per key in numeric_window_embeddings.")
    parser.add_argument("--schema", default=default_schema(),
                        help="schema of numeric_window_embeddings (default %(default)s)")
    parser.add_argument("--apply", action="store_true",
                        help="delete the older duplicates (without it: only count them)")
    args = parser.parse_args(argv)
    try:
        resolve_server()  # one clear line when no server is reachable
        with psycopg.connect(autocommit=True) as conn:
            count = dedupe(conn, args.schema, args.apply)
    except (PipelineError, psycopg.Error) as exc:
        print(f"dedupe_numeric_embeddings: error: {first_line(exc)}",
              file=sys.stderr)
        return 1
    verb = "deleted" if args.apply else "would delete (run with --apply)"
    print(f"{verb} {count} older duplicate rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
