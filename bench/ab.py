"""Interleaved A/B of two checkouts' bench harnesses (`make bench`), on one server.

    python -m bench.ab --a ../before --b . --runs 3 [--bench-args="--million"]
        [--a-args="..."] [--b-args="--steps range,encode-write"] [--label-map map.json]
        [--a-env PROMETHEUS_PGVECTOR=off]

Runs each checkout's OWN bench harness (its bench/, its venv, its dbt project; `make
install` there first) alternately A, B, A, B, ..., A in database <prefix>_a and B in
<prefix>_b, with the same libpq variables (the server this process reaches: run it after
`eval "$(make -s env)"` or with PG* set), so a busy moment of the machine falls on both sides
alike. The harness is run as `make bench` runs it, minus the Makefile's libpq set-up: the
current Makefile's `make bench` starts that checkout's own private cluster, so two such
checkouts would each measure on their own server. After each run it reads the newest
bench-results/bench-*.json of that checkout, then prints medians and individual values of
the figures both sides report, matched by label, and writes them to bench-results/ab-*.md.

--bench-args go to both sides, --a-args / --b-args to one (an older harness may not know
--steps); write them with `=` (--b-args="--steps range"), or argparse takes the value for
an option of its own. --no-docs is added for a harness that knows it (its bench/*.py
mention it), so neither checkout's docs/performance.md changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.ab_table import SideRuns, load_label_map, markdown, read_run
from bench.docs import git_commit, machine
from bench.settings import PROJECT_DIR
from prometheus.numeric.pgcluster import REDIRECTING_VARIABLES

# Variables that would tie a child to the checkout this runs from, not its own.
CHECKOUT_VARIABLES = ("VIRTUAL_ENV", "DBT_PROFILES_DIR", "DBT_TARGET_PATH",
                      "PROMETHEUS_PROJECT_DIR", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def say(message: str) -> None:
    print(f"ab: {message}", file=sys.stderr, flush=True)


def same_server_env() -> tuple[dict[str, str], str, str]:
    """The environment both sides get: the PG* variables of the server libpq reaches from
    here, spelled out (the same server for both sides), without this checkout's venv and dbt
    settings. Also the server's version, and its address."""
    with psycopg.connect(autocommit=True) as conn:
        row = conn.execute("show server_version").fetchone()
        info = conn.info
        server = f"PostgreSQL {row[0] if row else '?'}"
        address = f"{info.host}:{info.port}"
        values = {"PGHOST": info.host, "PGPORT": str(info.port), "PGUSER": info.user,
                  "PGDATABASE": info.dbname}
        if info.password:
            values["PGPASSWORD"] = info.password
    # A service file (or PGHOSTADDR) would outrank the PG* variables spelled out below.
    env = {name: value for name, value in os.environ.items()
           if name not in CHECKOUT_VARIABLES and name not in REDIRECTING_VARIABLES}
    venv_bin = os.path.join(os.environ.get("VIRTUAL_ENV", "/nonexistent"), "bin")
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if part and os.path.normpath(part) != venv_bin)
    env.update(values)
    return env, server, address


def knows(checkout: Path, option: str) -> bool:
    return any(option in path.read_text(errors="replace")
               for path in (checkout / "bench").glob("*.py"))


def newest_result(checkout: Path, since: float) -> Path | None:
    results = [path for path in (checkout / "bench-results").glob("bench-*.json")
               if path.stat().st_mtime >= since]
    return max(results, key=lambda path: path.stat().st_mtime, default=None)


def install(checkout: Path, env: dict[str, str]) -> None:
    """The checkout's venv and dbt profile, as its `make bench` would make them first."""
    say(f"make -C {checkout} install")
    subprocess.run(["make", "-s", "-C", str(checkout), "install"], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def harness_env(checkout: Path, env: dict[str, str]) -> dict[str, str]:
    """What the checkout's `make bench` recipe gives its harness (its venv first on PATH, its
    dbt profile), with this process's libpq variables instead of its private cluster's."""
    venv = checkout / ".venv"
    return {**env, "PATH": os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]),
            "VIRTUAL_ENV": str(venv), "DBT_PROFILES_DIR": str(checkout / ".dbt")}


def run_once(side: SideRuns, bench_args: list[str], env: dict[str, str], log_path: Path,
             timeout: float, label_map: dict[str, str], number: int) -> None:
    command = [str(side.checkout / ".venv" / "bin" / "python"), "-m", "bench.run_bench",
               *bench_args]
    say(f"{side.name} run {number}: {shlex.join(command)} (log {log_path})")
    started_wall, started = time.time(), time.monotonic()
    with log_path.open("w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        # Its own session, so a timeout ends the whole python -> CLI tree.
        child = subprocess.Popen(command, cwd=side.checkout, env=harness_env(side.checkout, env),
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            returncode = child.wait()
            say(f"{side.name} run {number}: killed after {timeout:.0f} s")
    seconds = time.monotonic() - started
    result = newest_result(side.checkout, started_wall)
    say(f"{side.name} run {number}: exit {returncode} in {seconds:.0f} s, "
        f"results {result or 'none'}")
    if result is None:
        side.failures.append(f"{side.name} run {number}: exit {returncode}, no bench-results "
                             f"JSON; see {log_path}")
        return
    try:
        read_run(result, label_map, side)
    except (ValueError, KeyError, TypeError) as exc:
        side.failures.append(f"{side.name} run {number}: unreadable {result}: {exc}")


def drop_databases(names: list[str], attempts: int = 5) -> None:
    """Best effort, a few tries: a server restarting (a test suite that stops and starts
    the private cluster) must not cost the table; the names are said when it fails."""
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(autocommit=True) as conn:
                for name in names:
                    conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(name)))
            say(f"dropped {', '.join(names)}")
            return
        except psycopg.Error as exc:
            text = " ".join(str(exc).split())
            if attempt == attempts:
                say(f"could not drop {', '.join(names)} ({text}); drop them by hand")
                return
            time.sleep(5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=Path, required=True, help="checkout A (the before)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (the after)")
    parser.add_argument("--runs", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--bench-args", default="", help="bench args for both sides")
    parser.add_argument("--a-args", default="", help="bench args for A only")
    parser.add_argument("--b-args", default="", help="bench args for B only")
    for name in ("a", "b"):
        parser.add_argument(f"--{name}-env", action="append", default=[], metavar="NAME=VALUE",
                            help=f"an environment variable for {name.upper()}'s runs only "
                                 "(e.g. PROMETHEUS_PGVECTOR=off); repeatable")
    parser.add_argument("--label-map", type=Path,
                        help='JSON {"label as reported": "label to compare under"}, both sides')
    parser.add_argument("--database-prefix", default="prometheus_bench",
                        help="A uses <prefix>_a, B <prefix>_b (default prometheus_bench)")
    parser.add_argument("--keep-databases", action="store_true",
                        help="leave both bench databases (default: dropped at the end)")
    parser.add_argument("--timeout", type=float, default=4 * 3600,
                        help="kill one side's run after this many seconds (default 14400)")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_DIR / "bench-results")
    args = parser.parse_args(argv)
    for name in ("a", "b"):
        checkout = getattr(args, name).resolve()
        if not (checkout / "Makefile").exists() or not (checkout / "bench").is_dir():
            parser.error(f"--{name} {checkout}: not a checkout with a Makefile and bench/")
        setattr(args, name, checkout)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for name in ("a_env", "b_env"):
        if any("=" not in item for item in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')}: write NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    label_map = load_label_map(args.label_map)
    env, server, address = same_server_env()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    log_dir = args.out_dir / f"ab-{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    sides: list[tuple[SideRuns, list[str]]] = []
    side_envs: dict[str, dict[str, str]] = {}
    for name, checkout, own, extra in (("A", args.a, args.a_args, args.a_env),
                                       ("B", args.b, args.b_args, args.b_env)):
        database = f"{args.database_prefix}_{name.lower()}"
        bench_args = ["--database", database, *(["--no-docs"] if knows(checkout, "--no-docs")
                                                else []),
                      *shlex.split(args.bench_args), *shlex.split(own)]
        side_envs[name] = {**env, **dict(item.split("=", 1) for item in extra)}
        described = " ".join([*extra, shlex.join(bench_args)])
        sides.append((SideRuns(name, checkout, git_commit(checkout), described), bench_args))
    for side, _ in sides:
        install(side.checkout, side_envs[side.name])
    say(f"{server} at {address}; {args.runs} runs per side, interleaved; logs in {log_dir}")
    try:
        for number in range(1, args.runs + 1):
            for side, bench_args in sides:
                run_once(side, bench_args, side_envs[side.name],
                         log_dir / f"{side.name}{number}.log", args.timeout, label_map, number)
    finally:
        if not args.keep_databases:
            drop_databases([f"{args.database_prefix}_a", f"{args.database_prefix}_b"])
    (a, _), (b, _) = sides
    title = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    table = markdown(a, b, server, address, machine(), title)
    out = args.out_dir / f"ab-{stamp}.md"
    out.write_text(table)
    (args.out_dir / f"ab-{stamp}.json").write_text(json.dumps(
        {"server": server, "address": address, "label_map": label_map,
         **{side.name: {"checkout": str(side.checkout), "commit": side.commit,
                        "args": side.args, "runs": side.runs, "failures": side.failures}
            for side, _ in sides}}, indent=2) + "\n")
    print(table)
    say(f"wrote {out}")
    return 0 if a.runs and b.runs else 1


if __name__ == "__main__":
    sys.exit(main())
