"""Drives dbt in-process with dbtRunner: parse once, invoke, log each node, raise on failure."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt_common import behavior_flags
from dbt_common.events.base_types import EventMsg

from prometheus.numeric import dbt_caches
from prometheus.numeric.errors import PipelineError

log = logging.getLogger("prometheus.numeric.dbt")

PROJECT_NAME = "prometheus_numeric"
# Commands that compile models into the manifest (see DbtRunner._manifest_compiled_models).
# `test` compiles tests only, and no test here reads an ephemeral model.
MODEL_COMMANDS = {"run", "build", "compile"}
FAILED_STATUSES = {"error", "fail", "runtime error"}
_ERROR_HEADERS = ("compilation error", "database error", "runtime error", "failure in",
                  "dbt was unable", "completed with")


def _calling_module() -> str:
    """dbt_common's BehaviorFlagRendered._default_source (the first module on the stack that
    is not behavior_flags) without inspect.stack(), which reads the source lines of every
    frame: it runs for each behavior flag of each invocation, about 1 s of a 7 s run."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name and name != behavior_flags.__name__:
            return str(name)
        frame = frame.f_back
    return "Unknown"


behavior_flags.BehaviorFlagRendered._default_source = staticmethod(  # type: ignore[method-assign]
    _calling_module)


class DbtFailure(PipelineError):
    """dbt reported an error or a failing test."""


def find_project_dir(explicit: Path | None = None) -> Path:
    """The dbt project: --project-dir, the working directory or a parent, else the checkout
    this package was installed from (an editable install)."""
    candidates = [explicit] if explicit else []
    if env_dir := os.environ.get("PROMETHEUS_PROJECT_DIR"):
        candidates.append(Path(env_dir))
    here = Path.cwd().resolve()
    candidates += [here, *here.parents, Path(__file__).resolve().parents[3]]
    for folder in candidates:
        if folder and (folder / "dbt_project.yml").exists() and \
                f"name: {PROJECT_NAME}" in (folder / "dbt_project.yml").read_text():
            return folder.resolve()
    raise PipelineError("no dbt project found: run from the project folder or pass --project-dir")


def find_profiles_dir(project_dir: Path) -> Path:
    """DBT_PROFILES_DIR when set, else <project>/.dbt holding a copy of profiles.example.yml."""
    if env_dir := os.environ.get("DBT_PROFILES_DIR"):
        return Path(env_dir)
    profiles_dir = project_dir / ".dbt"
    if not (profiles_dir / "profiles.yml").exists():
        profiles_dir.mkdir(exist_ok=True)
        shutil.copyfile(project_dir / "profiles.example.yml", profiles_dir / "profiles.yml")
    return profiles_dir


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
        # dbt keeps global state (flags, adapters, event manager): one invocation at a time,
        # whichever thread asks (a run staged in parts invokes dbt from a background thread).
        self._invoking = threading.RLock()
        dbt_caches.install(project_dir / "target" / "prometheus_cache")

    def _common_args(self) -> list[str]:
        return [
            "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.profiles_dir),
            "--log-level", "none",  # our logger reports node statuses on stderr
            # dbt.log keeps each node's start, end and error; its debug lines (every SQL
            # statement) cost about 0.06 s per invocation, so they are left out.
            "--log-level-file", os.environ.get("DBT_LOG_LEVEL_FILE", "info"),
            "--log-path", str(self.project_dir / "logs"),
            "--target-path", str(self.project_dir / "target"),
            # manifest.json and run_results.json cost ~0.5 s per invocation and nothing reads
            # them here; partial_parse.msgpack (what makes the next parse fast) is still kept.
            "--no-write-json",
        ]

    def _on_event(self, event: EventMsg) -> None:
        if event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        level = logging.INFO if node.node_status in ("success", "pass") else logging.WARNING
        log.log(level, "dbt %s %s: %s", node.resource_type, node.node_name, node.node_status)

    def manifest(self) -> Any:
        with self._invoking:
            if self._manifest is None:
                result = dbtRunner().invoke(["parse", *self._common_args()])
                self._raise_for(result, "parse")
                self._manifest = result.result
            return self._manifest

    def invoke(self, command: list[str], dbt_vars: dict[str, Any] | None = None
               ) -> dbtRunnerResult:
        args = [*command, *self._common_args()]
        if dbt_vars:
            args += ["--vars", json.dumps(dbt_vars)]
        with self._invoking:
            if command[0] in MODEL_COMMANDS:
                if self._manifest_compiled_models:
                    self._manifest = None  # a fresh (partial) parse, about 0.1 s
                self._manifest_compiled_models = True
            runner = dbtRunner(manifest=self.manifest(), callbacks=[self._on_event])
            result = runner.invoke(args)
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
                name = getattr(node_result.node, "name", "?")
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
