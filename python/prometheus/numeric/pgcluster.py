"""A private PostgreSQL cluster under the project's `.pgdata/`, for demos and tests.

When the libpq variables already point at a server (PGHOST, PGPORT or PGDATABASE set), that
server is used and nothing is started. Otherwise the machine's `initdb`/`pg_ctl` create and
start a cluster that listens on 127.0.0.1 only, on a free port, with trust authentication.
As root the cluster runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.errors import PipelineError

DEFAULT_DATABASE = "prometheus"
SERVER_USER = "postgres"
LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
# Settings for a workstation-sized cluster doing bulk COPY and window functions.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "max_connections": "50",
}
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin; install PostgreSQL 14 or newer (Debian/Ubuntu: "
    "apt-get install postgresql) or set PGHOST/PGPORT/PGUSER/PGDATABASE to use an existing server"
)


@dataclass(frozen=True)
class Connection:
    """The libpq variables that reach one server."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = None

    def environ(self) -> dict[str, str]:
        values = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password:
            values["PGPASSWORD"] = self.password
        return values


def external_server_configured(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in ("PGHOST", "PGPORT", "PGDATABASE"))


def external_connection(environ: dict[str, str] | None = None) -> Connection:
    env = os.environ if environ is None else environ
    return Connection(
        host=env.get("PGHOST", "localhost"),
        port=int(env.get("PGPORT", "5432")),
        user=env.get("PGUSER", pwd.getpwuid(os.getuid()).pw_name),
        database=env.get("PGDATABASE", env.get("PGUSER", DEFAULT_DATABASE)),
        password=env.get("PGPASSWORD"),
    )


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def find_server_binaries() -> Path:
    """The directory that holds initdb and pg_ctl: PATH first, then the newest Debian layout."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version_key, reverse=True
    )
    for pg_ctl in candidates:
        if (pg_ctl.parent / "initdb").exists():
            return pg_ctl.parent
    raise PipelineError(INSTALL_HINT)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        # As PostgreSQL binds: connections in TIME_WAIT from before a restart do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_root(project_dir: Path) -> Path:
    """<project>/.pgdata, unless running as root in a folder the server's user cannot reach
    (a checkout under /root, say): then a folder of its own under /var/tmp."""
    preferred = project_dir / ".pgdata"
    if os.geteuid() != 0 or (preferred / "data" / "PG_VERSION").exists():
        return preferred
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        return preferred
    reachable = subprocess.run(
        ["test", "-x", str(project_dir)], user=account.pw_uid, group=account.pw_gid,
        extra_groups=[], check=False, capture_output=True).returncode == 0
    if reachable:
        return preferred
    digest = hashlib.sha1(str(project_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"prometheus-pgdata-{digest}"


class PrivateCluster:
    """A cluster in `<project>/.pgdata`, owned by the user that runs the server."""

    def __init__(self, project_dir: Path) -> None:
        self.root = _cluster_root(project_dir)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.port_file = self.root / "port"
        self.running_as_root = os.geteuid() == 0

    # -- running commands as the server's user -------------------------------------------
    def _server_account(self) -> pwd.struct_passwd | None:
        if not self.running_as_root:
            return None
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise PipelineError(
                f"running as root needs a '{SERVER_USER}' user to own the private cluster "
                f"(useradd --system {SERVER_USER}), since PostgreSQL refuses to run as root"
            ) from exc

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        account = self._server_account()
        kwargs: dict[str, object] = {}
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if k not in LIBPQ_VARIABLES}
        if account is not None:
            env["HOME"] = account.pw_dir
        result = subprocess.run(
            args, capture_output=True, text=True, env=env, cwd="/", check=False, **kwargs
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise PipelineError(
                f"{Path(args[0]).name} failed: {detail[-1] if detail else result.returncode}"
            )
        return result

    def _prepare_root(self) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        account = self._server_account()
        if account is None:
            return
        os.chown(self.root, account.pw_uid, account.pw_gid)
        probe = self._run(["test", "-w", str(self.root)], check=False)
        if probe.returncode != 0:
            raise PipelineError(
                f"the '{SERVER_USER}' user cannot reach {self.root}: give it search permission "
                f"on every parent folder (chmod o+x), or set PGHOST/PGPORT to another server"
            )

    # -- lifecycle ----------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized():
            return False
        bin_dir = find_server_binaries()
        return self._run([str(bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)],
                         check=False).returncode == 0

    def port(self) -> int:
        try:
            return int(self.port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def initialize(self) -> None:
        bin_dir = find_server_binaries()
        self._prepare_root()
        self._run([
            str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER,
            "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--locale=C",
        ])
        # Trust is safe only because the server listens on the loopback address alone.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n"
        )

    def start(self) -> Connection:
        bin_dir = find_server_binaries()
        if not self.initialized():
            self.initialize()
        if not self.running():
            port = self.port()
            if not port or not _port_is_free(port):
                port = _free_port()
            self.port_file.write_text(f"{port}\n")
            options = " ".join(
                f"-c {name}={shlex.quote(value) if value else chr(39) * 2}"
                for name, value in SERVER_SETTINGS.items()
            )
            if self.log_file.exists():
                self.log_file.unlink()
            self._prepare_root()
            self._run([
                str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
                "-l", str(self.log_file), "-o", f"-p {port} {options}",
            ])
        connection = self.connection()
        self._ensure_database(bin_dir, connection)
        return connection

    def stop(self) -> None:
        if self.running():
            bin_dir = find_server_binaries()
            self._run([str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D",
                       str(self.data_dir)])

    def connection(self) -> Connection:
        return Connection(host="127.0.0.1", port=self.port(), user=SERVER_USER,
                          database=DEFAULT_DATABASE)

    def _ensure_database(self, bin_dir: Path, connection: Connection) -> None:
        psql = shutil.which("psql") or str(bin_dir / "psql")
        base = [psql, "-X", "-q", "-h", connection.host, "-p", str(connection.port), "-U",
                connection.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tA", "-c"]
        exists = self._run(
            [*base, f"select 1 from pg_database where datname = '{connection.database}'"]
        ).stdout.strip()
        if exists != "1":
            self._run([*base, f'create database "{connection.database}"'])


def project_root() -> Path:
    """The folder with dbt_project.yml: the working directory or one of its parents."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dbt_project.yml").exists():
            return folder
    return here


def ensure_server(project_dir: Path | None = None) -> Connection:
    """The server to use: the one the libpq variables name, else the started private one."""
    if external_server_configured():
        return external_connection()
    return PrivateCluster(project_dir or project_root()).start()


def use_server(project_dir: Path | None = None) -> Connection:
    """ensure_server, and point this process's libpq variables (psycopg's and dbt's) at it."""
    connection = ensure_server(project_dir)
    os.environ.update(connection.environ())
    return connection


def _print_exports(values: dict[str, str]) -> None:
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prometheus-pg", description="Start, stop or describe the project's PostgreSQL."
    )
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--project-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    project_dir = (args.project_dir or project_root()).resolve()
    cluster = PrivateCluster(project_dir)
    try:
        if args.action == "start":
            connection = ensure_server(project_dir)
            print(f"postgres ready at {connection.host}:{connection.port}/{connection.database}",
                  file=sys.stderr)
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "status":
            if external_server_configured():
                print("external server (libpq variables set)")
            else:
                print(f"private cluster {'running' if cluster.running() else 'stopped'} "
                      f"in {cluster.data_dir} on port {cluster.port() or '-'}")
        else:
            _print_exports(ensure_server(project_dir).environ())
    except PipelineError as exc:
        print(f"prometheus-pg: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
