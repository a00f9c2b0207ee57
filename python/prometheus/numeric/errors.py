"""Expected failures: the CLI turns these into one line on stderr and an exit code."""

from __future__ import annotations

import argparse
from typing import NoReturn


class PipelineError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = 1


class UsageError(PipelineError):
    """Bad arguments: nothing was written."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """What an exception says, in one line (PostgreSQL's messages go on with DETAIL lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming the argument, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")
