"""Knows whether the project's views, seed and tables are in the database as this checkout
defines them, and deploys them when they are not, so a run rebuilds them only when missing
or changed.

Rebuilding a view swaps it under whoever reads it, so a deploy needs every other run out of
the way: each run holds the staging lock shared from staging to its end, and a deploy takes
it exclusively. The key hashes what decides the deployed objects: each node's SQL checksum,
materialization, relation and macros' code, and the relations of the sources. Relations are
named within the database (schema and name): a copy of the database (`create database ...
template`, a restore under another name) holds the same deployment, so it is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import psycopg
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.dbt_runner import DbtRunner
from prometheus.numeric.project import (
    ALREADY_STORED_NODE,
    PROJECT_NAME,
    RETURNS_NODE,
    WINDOWS_NODE,
)

log = logging.getLogger("prometheus.numeric.deployment")

DEPLOYMENTS_TABLE = "numeric_pipeline_deployments"
REGISTRY_SEED = "numeric_embedding_models"
RETURNS_MODEL = "int_daily_returns_computed"
ALREADY_STORED_MODEL = "int_windows_already_stored"
WINDOWS_MODEL = "numeric_windows"
# One dbt invocation deploys the seed, views and tables and stages the run's windows.
DEPLOYED_NODES = ("+numeric_windows", "+rejected_prices", "numeric_window_values",
                  "outdated_embeddings", "embedding_coverage",
                  "stg_embeddings__numeric_window_embeddings")


def deployment_key(manifest: Any, node_ids: list[str]) -> str:
    """A hash of everything that decides what the given nodes deploy."""
    parts: list[Any] = []
    for unique_id in sorted(node_ids):
        node = manifest.nodes[unique_id]
        macros = sorted(node.depends_on.macros)
        parts.append([unique_id, node.checksum.checksum, [node.schema, node.alias],
                      node.config.materialized, macros,
                      [manifest.macros[m].macro_sql for m in macros if m in manifest.macros]])
    parts.append(sorted([source.schema, source.identifier]
                        for source in manifest.sources.values()))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def setup_node_ids(manifest: Any) -> list[str]:
    """The project's views and seeds: what a run must not rebuild under another run."""
    return [unique_id for unique_id, node in manifest.nodes.items()
            if node.package_name == PROJECT_NAME
            and (node.resource_type == "seed" or (node.resource_type == "model"
                                                   and node.config.materialized == "view"))]


def _staging_lock(conn: psycopg.Connection, shared: bool, release: bool = False) -> None:
    statement = queries.STAGING_UNLOCK if release else queries.STAGING_LOCK
    conn.execute(statement.format(mode="_shared" if shared else ""), (queries.LOCK_NAMESPACE,))


class Deployment:
    """What this checkout deploys, and whether the database holds exactly that."""

    def __init__(self, dbt: DbtRunner) -> None:
        manifest = dbt.manifest()
        nodes = [*setup_node_ids(manifest), RETURNS_NODE, ALREADY_STORED_NODE, WINDOWS_NODE]
        self.key = deployment_key(manifest, nodes)
        # The daily returns are incremental: rows computed by another version of the model
        # must not mix with new ones, so a changed model is rebuilt whole.
        self.returns_key = deployment_key(manifest, [RETURNS_NODE])
        self.relations = [dbt.relation_name(node) for node in nodes]
        self.table = sql.Identifier(manifest.nodes[WINDOWS_NODE].schema, DEPLOYMENTS_TABLE)
        self.returns_relation = dbt.relation_name(RETURNS_NODE)

    def _recorded(self, conn: psycopg.Connection, key: str) -> bool:
        if not _exists(conn, self.table.as_string(conn)):
            return False
        return conn.execute(sql.SQL(queries.DEPLOYMENT_RECORDED).format(table=self.table),
                            (key,)).fetchone() is not None

    def is_current(self, conn: psycopg.Connection) -> bool:
        """This key was recorded and every deployed relation still exists."""
        if not self._recorded(conn, self.key):
            return False
        missing = conn.execute(queries.RELATIONS_MISSING, (self.relations,)).fetchone()
        return missing is not None and missing[0] == 0

    def stage(self, conn: psycopg.Connection, dbt: DbtRunner, dbt_vars: dict[str, Any],
              run_id: str, skip_existing: bool) -> None:
        """Stage the run's windows, deploying first when needed; returns holding the staging
        lock shared on conn (until conn closes: no deploy while the run reads)."""
        if not self.is_current(conn):
            log.info("run %s: waiting for runs in flight to deploy the project's views", run_id)
            _staging_lock(conn, shared=False)
            try:
                if not self.is_current(conn):
                    self._deploy(conn, dbt, dbt_vars, run_id)
                    _staging_lock(conn, shared=True)
                    return
            finally:
                _staging_lock(conn, shared=False, release=True)
        _staging_lock(conn, shared=True)
        log.info("run %s: staging windows with dbt", run_id)
        dbt.invoke(["run", "--select", RETURNS_MODEL, *staging_models(skip_existing)],
                   dbt_vars)

    @staticmethod
    def stage_part(dbt: DbtRunner, dbt_vars: dict[str, Any], skip_existing: bool) -> None:
        """Stage one more part of a run staged in parts (its vars say which); the run holds
        the staging lock since its part 0."""
        dbt.invoke(["run", "--select", *staging_models(skip_existing)], dbt_vars)

    def _deploy(self, conn: psycopg.Connection, dbt: DbtRunner, dbt_vars: dict[str, Any],
                run_id: str) -> None:
        log.info("run %s: deploying the views and seed, staging windows with dbt", run_id)
        if _exists(conn, self.returns_relation) and not self._recorded(conn, self.returns_key):
            log.info("run %s: the daily returns model changed; rebuilding it", run_id)
            dbt.invoke(["run", "--full-refresh", "--select", RETURNS_MODEL], dbt_vars)
        dbt.invoke(["build", "--select", REGISTRY_SEED, *DEPLOYED_NODES,
                    "--resource-type", "seed", "--resource-type", "model"], dbt_vars)
        conn.execute(sql.SQL(queries.CREATE_DEPLOYMENTS).format(table=self.table))
        for key in (self.key, self.returns_key):
            conn.execute(sql.SQL(queries.RECORD_DEPLOYMENT).format(table=self.table), (key,))


def staging_models(skip_existing: bool) -> list[str]:
    """The models that stage a run's windows. Only --skip-existing lists keys already
    stored: without it, int_windows_already_stored would add no row for the run, and each
    dbt model costs an incremental materialization's statements."""
    return [ALREADY_STORED_MODEL, WINDOWS_MODEL] if skip_existing else [WINDOWS_MODEL]


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute(queries.RELATION_EXISTS, (relation,)).fetchone()
    return bool(row and row[0])
