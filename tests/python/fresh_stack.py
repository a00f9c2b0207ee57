"""In-process calls of the CLI and dbt on a stack of their own.

dbt-common builds each behavior flag's event with inspect.stack(), whose cost grows with
the frames below it, most of all frames without a source file: inspect.getmodule scans all
of sys.modules for each. xdist's workers run from code strings, so every test sits on such
frames, and an in-process CLI run cost several times what the same command costs as a
process. A new thread's stack holds only the call's own frames, as a process's does.
Also what a failed CLI run must look like (assert_one_line_error), in process or not.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus.numeric.dbt_runner import DbtRunner

T = TypeVar("T")


def on_a_fresh_stack(call: Callable[[], T]) -> T:
    """call() on a new thread: its result, or its exception (SystemExit too) raised here.
    An interrupt of the test waits for the call to end before the test's teardown runs."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-process") as pool:
        return pool.submit(call).result()


@dataclass
class CliResult:
    """What a CLI run printed and returned, as a process would have."""

    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, str]:
        lines = self.stdout.strip().splitlines()
        return dict(re.findall(r"(\w+)=(\S+)", lines[-1])) if lines else {}


def assert_one_line_error(result: CliResult | subprocess.CompletedProcess[str], code: int,
                          *words: str) -> None:
    """The backfill failed as the standards say: exit code, one line naming the problem, no
    traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("backfill_numeric_embeddings: error:"), last
    for word in words:
        assert word in last, last


def run_main(main: Callable[[list[str]], int], args: Sequence[str]) -> CliResult:
    """A command's main(args) in this process, on a fresh stack: its exit code (argparse's
    usage errors included), stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = on_a_fresh_stack(lambda: main(list(args)))
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


class FreshStackDbtRunner(DbtRunner):
    """The project's DbtRunner, each invocation on a fresh stack."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        return on_a_fresh_stack(lambda: DbtRunner.invoke(self, *args, **kwargs))
