"""Keeps the newest row per (entity_type, entity_id, as_of_date, model_id) in a
numeric_window_embeddings table the original tool filled with duplicates, so that the
unique key can be added. Dry run by default; --apply deletes in one transaction."""

from __future__ import annotations

import argparse
import os
import sys

import psycopg
from psycopg import sql

from prometheus.numeric.connection import use_resolved_server
from prometheus.numeric.errors import PipelineError

# Newest = latest created_at, then highest embedding_id (the later insert).
RANKED = """
select ctid, row_number() over (
    partition by entity_type, entity_id, as_of_date, model_id
    order by created_at desc nulls last, embedding_id desc
) as newest_first
from {table}
"""


def default_schema() -> str:
    return os.environ.get("EMBEDDINGS_SCHEMA") or os.environ.get("HISTORICAL_DB_SCHEMA") \
        or "public"


def dedupe(conn: psycopg.Connection, schema: str, apply: bool) -> int:
    """The number of older duplicate rows (deleted when apply is true)."""
    table = sql.Identifier(schema, "numeric_window_embeddings")
    with conn.transaction():
        conn.execute(sql.SQL("lock table {} in share row exclusive mode").format(table))
        ranked = sql.SQL(RANKED).format(table=table)
        if not apply:
            row = conn.execute(sql.SQL("select count(*) from ({}) as ranked"
                                       " where newest_first > 1").format(ranked)).fetchone()
            return int(row[0]) if row else 0
        cur = conn.execute(sql.SQL(
            "delete from {table} where ctid in (select ctid from ({ranked}) as ranked"
            " where newest_first > 1)").format(table=table, ranked=ranked))
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
        use_resolved_server()
        with psycopg.connect(autocommit=True) as conn:
            count = dedupe(conn, args.schema, args.apply)
    except (PipelineError, psycopg.Error) as exc:
        print(f"dedupe_numeric_embeddings: error: {str(exc).strip().splitlines()[0]}",
              file=sys.stderr)
        return 1
    verb = "deleted" if args.apply else "would delete (run with --apply)"
    print(f"{verb} {count} older duplicate rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
