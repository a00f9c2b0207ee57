"""In-process calls of the CLI and dbt on a stack of their own.

dbt-common builds each behavior flag's event with inspect.stack(), whose cost grows with
the frames below it, most of all frames without a source file: inspect.getmodule scans all
of sys.modules for each. xdist's workers run from code strings, so every test sits on such
frames, and an in-process CLI run cost several times what the same command costs as a
process. A new thread's stack holds only the call's own frames, as a process's does.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prometheus.numeric.dbt_runner import DbtRunner

T = TypeVar("T")


def on_a_fresh_stack(call: Callable[[], T]) -> T:
    """call() on a new thread: its result, or its exception (SystemExit too) raised here.
    An interrupt of the test waits for the call to end before the test's teardown runs."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-process") as pool:
        return pool.submit(call).result()


class FreshStackDbtRunner(DbtRunner):
    """The project's DbtRunner, each invocation on a fresh stack."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        return on_a_fresh_stack(lambda: DbtRunner.invoke(self, *args, **kwargs))
