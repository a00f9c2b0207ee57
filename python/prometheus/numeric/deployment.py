"""Knows whether the project's views and seed are already in the database as this checkout
defines them, so a run only rebuilds them (exclusively) when they are missing or changed.

Rebuilding a view swaps it under whoever reads it, so it needs every other run out of the
way; most runs find the deployment current and stage their windows under a shared lock, in
parallel with other runs (shards). The key hashes what decides the deployed objects: each
node's SQL checksum, config, relation and macros' code, and the relations of the sources.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg
from psycopg import sql

from prometheus.numeric.dbt_runner import PROJECT_NAME

DEPLOYMENTS_TABLE = "numeric_pipeline_deployments"
CREATE_DEPLOYMENTS = """
create table if not exists {table} (
    deployment_key text primary key,
    deployed_at timestamptz not null default now()
)
"""


def deployment_key(manifest: Any, node_ids: list[str]) -> str:
    """A hash of everything that decides what the given nodes deploy."""
    parts: list[Any] = []
    for unique_id in sorted(node_ids):
        node = manifest.nodes[unique_id]
        macros = sorted(node.depends_on.macros)
        parts.append([unique_id, node.checksum.checksum, node.relation_name,
                      node.config.materialized, macros,
                      [manifest.macros[m].macro_sql for m in macros if m in manifest.macros]])
    parts.append(sorted(str(source.relation_name) for source in manifest.sources.values()))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def setup_node_ids(manifest: Any) -> list[str]:
    """The project's views and seeds: what a run must not rebuild under another run."""
    return [unique_id for unique_id, node in manifest.nodes.items()
            if node.package_name == PROJECT_NAME
            and (node.resource_type == "seed" or (node.resource_type == "model"
                                                   and node.config.materialized == "view"))]


def _table(schema: str) -> sql.Composable:
    return sql.Identifier(schema, DEPLOYMENTS_TABLE)


def is_recorded(conn: psycopg.Connection, schema: str, key: str) -> bool:
    if not relation_exists(conn, _table(schema).as_string(conn)):
        return False
    return conn.execute(sql.SQL("select 1 from {} where deployment_key = %s").format(
        _table(schema)), (key,)).fetchone() is not None


def is_deployed(conn: psycopg.Connection, schema: str, key: str,
                relations: list[str]) -> bool:
    """True when this key was recorded and every given relation still exists."""
    if not is_recorded(conn, schema, key):
        return False
    missing = conn.execute("select count(*) from unnest(%s::text[]) as relation"
                           " where to_regclass(relation) is null", (relations,)).fetchone()
    return missing is not None and missing[0] == 0


def relation_exists(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()
    return bool(row and row[0])


def record_deployment(conn: psycopg.Connection, schema: str, key: str) -> None:
    conn.execute(sql.SQL(CREATE_DEPLOYMENTS).format(table=_table(schema)))
    conn.execute(sql.SQL("insert into {} (deployment_key) values (%s)"
                         " on conflict (deployment_key) do update set deployed_at = now()"
                         ).format(_table(schema)), (key,))
