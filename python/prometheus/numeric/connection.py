"""Which PostgreSQL server a command works on: libpq's own rules, exactly as psql applies them.

libpq decides (a service file named by PGSERVICE, whose settings win over the PG* variables,
then PGHOST, PGPORT, ..., PGPASSFILE, then its compiled-in defaults), so the commands connect
once with an empty conninfo and read back what libpq chose. dbt-postgres's profile names a
host and port explicitly (an empty host does not make libpq read the service), so the same
server is handed to dbt as plain PG* variables, and dbt's on-run-start hook
(macros/check_target_server.sql) refuses to run when its target is another server. No command
here starts a server: the project's private one is started by `make env` / `make demo`.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

import psycopg

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.queries import SERVER_IDENTITY

START_HINT = 'start the project\'s private server with: eval "$(make -s env)"'


@dataclass(frozen=True)
class ResolvedServer:
    """The server, database and role libpq resolved, and how the server identifies itself."""

    host: str  # a host name, an address, or the directory of a Unix socket
    port: int
    user: str
    dbname: str
    password: str | None
    identity: str  # SERVER_IDENTITY: the same text whichever way one connects to the server

    def environ(self) -> dict[str, str]:
        """The PG* variables that reach this server without a service file (for dbt)."""
        values = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                  "PGDATABASE": self.dbname}
        if self.password:
            values["PGPASSWORD"] = self.password
        return values


def resolve_server() -> ResolvedServer:
    """Connect as psql would and read back where libpq went; a clear error when it cannot."""
    try:
        with psycopg.connect("", autocommit=True) as conn:
            row = conn.execute(SERVER_IDENTITY).fetchone()
            info = conn.info
            return ResolvedServer(host=info.host, port=info.port, user=info.user,
                                  dbname=info.dbname, password=info.password or None,
                                  identity=str(row[0]) if row else "")
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split())
        # libpq's ping answers OK from a running server whatever the database, role or
        # password: then the server is there and refused this connection (a database that
        # does not exist, a wrong password), and starting another server is no remedy.
        if psycopg.pq.PGconn.ping(b"") == psycopg.pq.Ping.OK:
            raise PipelineError(f"the PostgreSQL server refused the connection ({detail})"
                                ) from None
        raise PipelineError(f"no PostgreSQL server reachable ({detail}); {START_HINT}") from None


def use_resolved_server() -> ResolvedServer:
    """resolve_server, and point this process's PG* variables at that server, so the dbt
    invocations made in-process connect to it too (the service file's other settings, such
    as sslmode, still apply: explicit values only override what they name)."""
    server = resolve_server()
    os.environ.update(server.environ())
    return server


def check_dbt_database(dbt_database: str, server: ResolvedServer) -> None:
    """dbt names relations with its target's database: another one than the command's is
    refused at once (another server is refused by dbt's on-run-start hook)."""
    if dbt_database != server.dbname:
        raise PipelineError(
            f"dbt's target is database {dbt_database}, not the database the command connects "
            f"to ({server.identity}); point the profile at the same server (the project's "
            "profiles.example.yml reads the PG* variables)")


def exports(server: ResolvedServer) -> str:
    """Shell export lines of the resolved PG* variables (`prometheus-pg resolved-env`)."""
    return "".join(f"export {name}={shlex.quote(value)}\n"
                   for name, value in server.environ().items())
