"""Expected failures: the CLI turns these into one line on stderr and an exit code."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = 1


class UsageError(PipelineError):
    """Bad arguments: nothing was written."""

    exit_code = 2
