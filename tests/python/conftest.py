"""Fixtures: a real PostgreSQL (the project's private cluster, through its Unix socket),
one fresh database per test session, the demo market loaded into it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from prometheus.numeric.demo_data import MarketShape, load_demo
from prometheus.numeric.pgcluster import PrivateCluster

PROJECT_DIR = Path(__file__).resolve().parents[2]
ORIGINAL_COMMAND = [
    "--as-of", "2025-01-31", "--window-days", "63", "--market-id", "US_EQ",
    "--limit", "500", "--model-id", "num-stab-core-v1",
]


@dataclass
class Database:
    """One database on the test server, with the environment that reaches it."""

    env: dict[str, str]

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(
            host=self.env["PGHOST"], port=self.env["PGPORT"], user=self.env["PGUSER"],
            dbname=self.env["PGDATABASE"], password=self.env.get("PGPASSWORD"),
            autocommit=True, **kwargs)  # type: ignore[arg-type]

    def value(self, query: str, params: tuple[object, ...] = ()) -> Any:
        """The one value a query returns (a count, a name), read on a new connection."""
        with self.connect() as conn:
            row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        assert row is not None, query
        return row[0]

    def backfill(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The command exactly as a user types it, from the project root."""
        return subprocess.run(
            [sys.executable, "-m", "prometheus.scripts.backfill_numeric_embeddings", *args],
            cwd=PROJECT_DIR, env=self.env, capture_output=True, text=True, timeout=timeout)

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        dbt = Path(sys.executable).parent / "dbt"
        return subprocess.run([str(dbt), *args], cwd=PROJECT_DIR, env=self.env,
                              capture_output=True, text=True, timeout=600)


def _server_env(tmp_profiles: Path) -> dict[str, str]:
    connection = PrivateCluster(PROJECT_DIR).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_"))}
    env.update(connection.environ())
    profiles = tmp_profiles / "profiles.yml"
    profiles.write_text((PROJECT_DIR / "profiles.example.yml").read_text())
    env["DBT_PROFILES_DIR"] = str(tmp_profiles)
    return env


def create_database(env: dict[str, str], prefix: str) -> Database:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname="postgres", password=env.get("PGPASSWORD"),
                         autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return Database({**env, "PGDATABASE": name})


def drop_database(database: Database) -> None:
    env = database.env
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname="postgres", password=env.get("PGPASSWORD"),
                         autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(env["PGDATABASE"])))


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _server_env(tmp_path_factory.mktemp("dbt_profiles"))


@pytest.fixture(scope="session")
def demo_db(server_env: dict[str, str]) -> Iterator[Database]:
    """The demo market, as `make demo` loads it, in a database of its own."""
    database = create_database(server_env, "prometheus_test")
    with database.connect() as conn:
        load_demo(conn, "public", MarketShape())
    yield database
    drop_database(database)


@pytest.fixture()
def demo_db_in_process(demo_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """demo_db for code run in this process: dbt and psycopg read the libpq and DBT_
    variables of this process, so they become exactly the database's."""
    for name in list(os.environ):
        if name.startswith(("PG", "DBT_")) and name not in demo_db.env:
            monkeypatch.delenv(name)
    for name, value in demo_db.env.items():
        if name.startswith(("PG", "DBT_")):
            monkeypatch.setenv(name, value)
    return demo_db


@pytest.fixture()
def empty_db(server_env: dict[str, str]) -> Iterator[Database]:
    database = create_database(server_env, "prometheus_test_empty")
    yield database
    drop_database(database)


@pytest.fixture(scope="session")
def original_run(demo_db: Database) -> subprocess.CompletedProcess[str]:
    """The original workflow's command, run once on the demo market."""
    result = demo_db.backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 0, result.stderr
    return result
