"""Where the dbt project and its profile are, and the names of its nodes; no dbt import, so a
usage error is reported before dbt (slow to import) is loaded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus.numeric.errors import PipelineError, UsageError

PROJECT_NAME = "prometheus_numeric"
WINDOWS_NODE = f"model.{PROJECT_NAME}.numeric_windows"
ALREADY_STORED_NODE = f"model.{PROJECT_NAME}.int_windows_already_stored"
REJECTED_NODE = f"model.{PROJECT_NAME}.rejected_prices"
RETURNS_NODE = f"model.{PROJECT_NAME}.int_daily_returns_computed"
EMBEDDINGS_SOURCE = f"source.{PROJECT_NAME}.embeddings.numeric_window_embeddings"
VECTORS_SOURCE = f"source.{PROJECT_NAME}.embeddings.numeric_window_vectors"
INSTRUMENTS_SOURCE = f"source.{PROJECT_NAME}.historical_db.instruments"


def _is_project(folder: Path) -> bool:
    project_file = folder / "dbt_project.yml"
    try:  # UTF-8, as dbt reads it, whatever the locale
        return project_file.is_file() and \
            f"name: {PROJECT_NAME}" in project_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # a file dbt could not read either
        return False


def find_project_dir(explicit: Path | None = None) -> Path:
    """The dbt project: --project-dir, else PROMETHEUS_PROJECT_DIR, else the working directory
    or a parent, else the checkout this package was installed from (an editable install).
    A folder named explicitly is used or refused, never passed over for another project."""
    if explicit is not None:
        if not _is_project(explicit):
            raise UsageError(f"--project-dir {explicit} is not the {PROJECT_NAME} dbt project"
                             " (no readable dbt_project.yml naming it)")
        return explicit.resolve()
    if env_dir := os.environ.get("PROMETHEUS_PROJECT_DIR"):
        if not _is_project(Path(env_dir)):
            raise PipelineError(f"PROMETHEUS_PROJECT_DIR={env_dir} is not the {PROJECT_NAME}"
                                " dbt project (no readable dbt_project.yml naming it)")
        return Path(env_dir).resolve()
    here = Path.cwd().resolve()
    for folder in [here, *here.parents, Path(__file__).resolve().parents[3]]:
        if _is_project(folder):
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
