"""Where a bench run ran (machine, server, commit) and the last-run section of
docs/performance.md, which every `make bench` rewrites; the rest of that file is kept by
hand and never touched."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import psycopg

from bench.report import Report
from bench.settings import DOCS_PATH, PROJECT_DIR

START = "<!-- bench:last-run:start -->"
END = "<!-- bench:last-run:end -->"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return "RAM unknown"


def machine() -> str:
    return f"{_cpu_model()}, {os.cpu_count()} cores, {_ram()}"


def server_version() -> str:
    """The server the libpq variables name (show server_version)."""
    try:
        with psycopg.connect(autocommit=True) as conn:
            row = conn.execute("show server_version").fetchone()
            return f"PostgreSQL {row[0] if row else '?'} at {conn.info.host}:{conn.info.port}"
    except psycopg.Error as exc:
        return f"unknown ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})"


def git_commit(checkout: Path = PROJECT_DIR) -> str:
    """The checkout's commit, and whether files that matter differ from it (this file and
    the results folder excepted: every run changes them)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True,
                                text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short=10", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    docs = DOCS_PATH.relative_to(PROJECT_DIR).as_posix()
    changed = git("status", "--porcelain", "--", ".", f":(exclude){docs}",
                  ":(exclude)bench-results")
    count = len(changed.splitlines())
    files = "file" if count == 1 else "files"
    return commit + (f" + uncommitted changes in {count} {files}" if count else "")


def last_run_section(report: Report, command: str, results: Path) -> str:
    env = report.environment
    commit, _, changes = env.get("commit", "?").partition(" ")
    changes = f" {changes}" if changes else ""
    lines = [
        f"Run {env.get('date', report.started)}, commit `{commit}`{changes}:",
        "",
        f"    {command}",
        "",
        f"- machine: {env.get('machine', '?')}",
        f"- server: {env.get('server', '?')}",
        *(f"- {key}: {value}" for key, value in report.settings.items()
          if key not in ("cli logs",)),
        f"- steps: {', '.join(report.steps)}",
        f"- full report (local, not committed): bench-results/{results.name} "
        "(notes, load averages, CLI logs)",
        "",
        report.markdown_table().rstrip("\n"),
    ]
    return "\n".join(lines)


def rewrite_last_run(path: Path, section: str) -> str:
    """Replace what is between the markers, nothing else; returns why it did not, or ""."""
    try:
        text = path.read_text()
    except OSError as exc:
        return f"not rewritten: {exc}"
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        return f"not rewritten: {path} needs one {START} line before one {END} line"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{section}\n{END}{tail}"
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(new)
    os.replace(scratch, path)  # whole or not at all: the hand-kept parts never half-written
    return ""
