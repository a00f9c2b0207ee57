"""`prometheus-pg`: start, stop or describe the project's private PostgreSQL, print the
shell exports that reach it, or name the server libpq reaches now."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from prometheus.numeric.connection import exports, resolve_server
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.pgcluster import REDIRECTING_VARIABLES, Connection, PrivateCluster

ACTIONS = {
    "start": "start the private cluster (created on first use)",
    "stop": "stop it",
    "status": "say whether it runs, and where",
    "env": "start it if stopped; print the exports (PG*, PATH for its psql) that reach it",
    "resolved-env": "print the PG* exports of the server libpq reaches now (PGSERVICE, PG* "
                    "variables, pgpass, defaults); starts nothing",
}


def project_root() -> Path:
    """The folder with dbt_project.yml: the working directory or one of its parents."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dbt_project.yml").exists():
            return folder
    return here


def env_lines(connection: Connection, bin_dir: Path) -> str:
    """`eval`-able lines: libpq reaches the private cluster, and `psql` is its own."""
    lines = [f"unset {' '.join(REDIRECTING_VARIABLES)}"]
    lines += [f"export {name}={shlex.quote(value)}"
              for name, value in connection.environ().items()]
    lines.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prometheus-pg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The project's private PostgreSQL.\n\n" + "\n".join(
            f"  {name:13} {text}" for name, text in ACTIONS.items()))
    parser.add_argument("action", choices=list(ACTIONS), metavar="{" + ",".join(ACTIONS) + "}")
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="the project (default: the folder with dbt_project.yml)")
    args = parser.parse_args(argv)
    try:
        if args.action == "resolved-env":
            print(exports(resolve_server()), end="")
            return 0
        cluster = PrivateCluster(args.project_dir or project_root())
        note = cluster.legacy_note()
        if note and args.action in ("start", "env"):
            print(f"prometheus-pg: note: {note}", file=sys.stderr)
        if args.action == "start":
            connection = cluster.start()
            print(f"{cluster.binaries.describe()} ready: socket {connection.host}, port "
                  f"{connection.port}, database {connection.database}", file=sys.stderr)
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "status":
            state = "running" if cluster.running() else "stopped"
            print(f"private cluster {state}: {cluster.binaries.describe()}; data "
                  f"{cluster.data_dir}; socket {cluster.socket_dir()}; port "
                  f"{cluster.port() or '-'}")
            if note:
                print(f"note: {note}")
        else:
            print(env_lines(cluster.start(), cluster.binaries.bin_dir), end="")
    except PipelineError as exc:
        print(f"prometheus-pg: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
