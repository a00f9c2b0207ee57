"""Drives dbt in-process with dbtRunner: parse once, invoke, log each node, raise on failure."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt_common.events.base_types import EventMsg

from prometheus.numeric.errors import PipelineError

log = logging.getLogger("prometheus.numeric.dbt")

# Commands that compile models into the manifest (see DbtRunner._manifest_compiled_models).
# `test` compiles tests only, and no test here reads an ephemeral model.
MODEL_COMMANDS = {"run", "build", "compile"}
FAILED_STATUSES = {"error", "fail", "runtime error"}
_ERROR_HEADERS = ("compilation error", "database error", "runtime error", "failure in",
                  "dbt was unable", "completed with")


# dbt reads --vars as YAML. JSON's escape of a character outside Unicode's first plane, a
# surrogate pair, is not valid YAML, so characters go as they are; except those YAML
# refuses raw (DEL, C1 controls, U+FFFE, U+FFFF, lone surrogates) or reads as a line break
# (NEL), which go escaped.
YAML_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def vars_text(dbt_vars: dict[str, Any]) -> str:
    """The --vars value dbt reads back as dbt_vars, whatever characters their strings hold."""
    return YAML_UNSAFE.sub(lambda match: f"\\u{ord(match[0]):04x}",
                           json.dumps(dbt_vars, ensure_ascii=False))


class DbtFailure(PipelineError):
    """dbt reported an error or a failing test."""


def _summary_line(message: str | None) -> str:
    """The line of a dbt error message that says what went wrong."""
    for line in (message or "").splitlines():
        text = line.strip()
        if text and not text.lower().startswith(_ERROR_HEADERS) and not text.startswith(">") \
                and not text.endswith("failed, error:"):
            return text
    return (message or "unknown error").strip().splitlines()[0] if message else "unknown error"


class DbtRunner:
    """One dbt project and profile; the manifest is parsed once and reused by every call."""

    def __init__(self, project_dir: Path, profiles_dir: Path) -> None:
        self.project_dir = project_dir
        self.profiles_dir = profiles_dir
        self._manifest: Any = None
        # dbt compiles models into the manifest it is given: a second run or build of a
        # model that reads ephemeral models, on the same manifest, finds their CTEs already
        # injected and leaves them out ("relation __dbt__cte__... does not exist").
        self._manifest_compiled_models = False

    def _common_args(self) -> list[str]:
        return [
            "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.profiles_dir),
            "--log-level", "none",  # our logger reports node statuses on stderr
            # dbt.log keeps each node's start, end and error; its debug lines (every SQL
            # statement) slow every invocation down, so they are left out.
            "--log-level-file", os.environ.get("DBT_LOG_LEVEL_FILE", "info"),
            "--log-path", str(self.project_dir / "logs"),
            # dbt's own DBT_TARGET_PATH, when set, as for `dbt` by hand.
            "--target-path", os.environ.get("DBT_TARGET_PATH")
            or str(self.project_dir / "target"),
            # Nothing here reads manifest.json or run_results.json, and writing them is a
            # large share of an invocation; partial_parse.msgpack (what makes the next parse
            # fast) is still kept.
            "--no-write-json",
        ]

    def _on_event(self, event: EventMsg) -> None:
        if event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        level = logging.INFO if node.node_status in ("success", "pass") else logging.WARNING
        log.log(level, "dbt %s %s: %s", node.resource_type, node.node_name, node.node_status)

    def manifest(self) -> Any:
        """The parsed project: parsed once (partially, from target/partial_parse.msgpack,
        when nothing changed), then handed to every invocation."""
        if self._manifest is None:
            result = dbtRunner().invoke(["parse", *self._common_args()])
            self._raise_for(result, "parse")
            self._manifest = result.result
        return self._manifest

    def invoke(self, command: list[str], dbt_vars: dict[str, Any] | None = None,
               check: bool = True) -> dbtRunnerResult:
        """Run one dbt command on the parsed project; raises DbtFailure when it fails (or
        failing tests fail it), unless check is false."""
        args = [*command, *self._common_args()]
        if dbt_vars:
            args += ["--vars", vars_text(dbt_vars)]
        if command[0] in MODEL_COMMANDS:
            if self._manifest_compiled_models:
                self._manifest = None  # parsed again (partially: nothing changed on disk)
            self._manifest_compiled_models = True
        runner = dbtRunner(manifest=self.manifest(), callbacks=[self._on_event])
        result = runner.invoke(args)
        if check:
            self._raise_for(result, command[0])
        return result

    @staticmethod
    def _raise_for(result: dbtRunnerResult, command: str) -> None:
        if result.exception is not None:
            raise DbtFailure(f"dbt {command} failed: {_summary_line(str(result.exception))}")
        if result.success:
            return
        failures = []
        for node_result in getattr(result.result, "results", []) or []:
            if str(node_result.status).lower() in FAILED_STATUSES:
                name = getattr(getattr(node_result, "node", None), "name", command)
                if str(node_result.status).lower() == "fail":  # a test that found rows
                    failures.append(f"{name} ({node_result.failures} failing rows)")
                else:
                    failures.append(f"{name}: {_summary_line(node_result.message)}")
        detail = failures[0] if failures else "see logs/dbt.log"
        if len(failures) > 1:
            detail += f" (and {len(failures) - 1} more)"
        raise DbtFailure(f"dbt {command} failed: {detail}")

    def relation_name(self, unique_id: str) -> str:
        manifest = self.manifest()
        node = manifest.nodes.get(unique_id) or manifest.sources.get(unique_id)
        if node is None or not node.relation_name:
            raise PipelineError(f"dbt project has no relation for {unique_id}")
        return str(node.relation_name)
