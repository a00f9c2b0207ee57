"""Runs the real backfill CLI as subprocesses: wall time, exit code, summary and peak RSS.

Each child is reaped with os.wait4, which gives that child's own rusage; RUSAGE_CHILDREN
would report the largest of all children so far, mixing runs together.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLI_MODULE = "prometheus.scripts.backfill_numeric_embeddings"


@dataclass
class CliRun:
    """One finished CLI process."""

    name: str
    args: list[str]
    seconds: float
    returncode: int
    max_rss_mb: float
    stdout: str
    log_path: Path
    # (seconds since launch, line) for each stderr line, stamped as it arrived.
    stderr_lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> dict[str, str]:
        """The key=value pairs of the CLI's last stdout line (its one-line summary)."""
        lines = self.stdout.strip().splitlines()
        if not lines:
            return {}
        return dict(part.split("=", 1) for part in lines[-1].split() if "=" in part)

    def vectors(self) -> int:
        return int(self.summary().get("vectors", "0"))

    def error(self) -> str:
        """How it ended and the CLI's last stderr lines, for the report when it failed."""
        ended = (f"killed by signal {-self.returncode}" if self.returncode < 0
                 else f"exit {self.returncode}")
        last = " | ".join(line for _, line in self.stderr_lines[-2:])
        return f"{ended} after {self.seconds:.0f} s: {last}"


def cli_help(env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", CLI_MODULE, "--help"], env=env, cwd=cwd,
                            capture_output=True, text=True, check=False)
    return result.stdout + result.stderr


def _tee(stream: IO[str], name: str, log: IO[str], lines: list[tuple[float, str]],
         started: float) -> None:
    for line in stream:
        elapsed = time.monotonic() - started
        lines.append((elapsed, line.rstrip("\n")))
        log.write(f"{elapsed:8.2f} {line}")
        log.flush()
        print(f"  [{name} {elapsed:7.1f}s] {line.rstrip()}", file=sys.stderr, flush=True)


class _Child:
    """A launched CLI whose stderr is tee'd to a log file and to our stderr as it runs."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], cwd: Path,
                 log_path: Path, timeout: float) -> None:
        self.name, self.args, self.log_path = name, list(args), log_path
        self.timed_out = False
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self._log = log_path.open("w")
        self._log.write("$ python -m " + CLI_MODULE + " " + " ".join(self.args) + "\n")
        self.proc = subprocess.Popen([sys.executable, "-m", CLI_MODULE, *self.args], env=env,
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stderr is not None
        self._thread = threading.Thread(
            target=_tee, args=(self.proc.stderr, name, self._log, self.lines, self.started),
            daemon=True)
        self._thread.start()
        # A run that overstays is killed, so the bench still ends and reports the rest.
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.start()

    def _kill(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def finish(self) -> CliRun:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        self._thread.join()
        _, status, usage = os.wait4(self.proc.pid, 0)
        seconds = time.monotonic() - self.started
        self._timer.cancel()
        if self.timed_out:
            self.lines.append((seconds, f"bench: killed after the {seconds:.0f} s timeout"))
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._log.write(f"--- stdout\n{stdout}--- exit {self.proc.returncode} "
                        f"in {seconds:.2f} s, max RSS {usage.ru_maxrss / 1024:.0f} MB\n")
        self._log.close()
        # Linux reports ru_maxrss in KiB.
        return CliRun(self.name, self.args, seconds, self.proc.returncode,
                      usage.ru_maxrss / 1024, stdout, self.log_path, self.lines)


def run_cli(name: str, args: Sequence[str], env: dict[str, str], cwd: Path,
            log_dir: Path, timeout: float) -> CliRun:
    print(f"bench: {name}: {' '.join(args)}", file=sys.stderr, flush=True)
    return _Child(name, args, env, cwd, log_dir / f"{name}.log", timeout).finish()


def run_parallel(runs: dict[str, list[str]], env: dict[str, str], cwd: Path,
                 log_dir: Path, timeout: float) -> tuple[float, list[CliRun]]:
    """Start every run at once; returns the wall time until the last one ends, and the runs."""
    started = time.monotonic()
    for name, args in runs.items():
        print(f"bench: {name}: {' '.join(args)}", file=sys.stderr, flush=True)
    children = [_Child(name, args, env, cwd, log_dir / f"{name}.log", timeout)
                for name, args in runs.items()]
    finished = [child.finish() for child in children]
    return time.monotonic() - started, finished


def where_time_goes(run: CliRun, top: int = 6) -> list[str]:
    """The longest silences in a run's stderr, each with the line that ended it.

    The CLI logs one line per dbt node and per stored batch, so a long gap before a line is
    the time that step took. Generic on purpose: the log wording may change.
    """
    gaps: list[tuple[float, float, str]] = []
    previous = 0.0
    for elapsed, line in run.stderr_lines:
        gaps.append((elapsed - previous, elapsed, line))
        previous = elapsed
    gaps.append((run.seconds - previous, run.seconds, "(process exit)"))
    longest = sorted(gaps, reverse=True)[:top]
    return [f"{gap:7.1f} s before t={at:6.1f}s: {line[:110]}"
            for gap, at, line in sorted(longest, key=lambda item: item[1])]
