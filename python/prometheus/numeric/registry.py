"""The model registry (SPEC "Model registry"), read from the dbt seed analysts join."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.errors import PipelineError, UsageError

FEATURES = ("close", "volume", "log_return")
REGISTRY_SEED = Path("seeds") / "numeric_embedding_models.csv"
ENCODERS = ("pad_to_dim", "flatten")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how its vectors are encoded."""

    model_id: str
    encoder: str
    dim: int | None  # None for flatten: 3 x window_days

    def vector_dim(self, window_days: int) -> int:
        """Values per vector; refuses a window the encoder cannot hold (never truncates)."""
        values = len(FEATURES) * window_days
        if self.encoder == "flatten":
            return values
        assert self.dim is not None
        if values > self.dim:
            raise UsageError(
                f"--window-days {window_days} gives {values} values but model "
                f"{self.model_id} holds {self.dim} (pad_to_dim never truncates); use "
                f"--window-days <= {self.dim // len(FEATURES)}"
            )
        return self.dim


def load_registry(project_dir: Path) -> dict[str, ModelSpec]:
    """The registry seed's models; a seed that is missing or malformed is refused with its
    path and line (the CLI's one-line error), before anything is staged."""
    path = project_dir / REGISTRY_SEED
    registry: dict[str, ModelSpec] = {}
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                spec = _model_spec(row, f"{path}, line {reader.line_num}")
                registry[spec.model_id] = spec
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PipelineError(f"cannot read the model registry {path}: {exc}") from None
    return registry


def _model_spec(row: dict[str | None, str | None], where: str) -> ModelSpec:
    cells = {name: row.get(name) for name in ("model_id", "encoder", "dim")}
    for name, cell in cells.items():
        if cell is None:
            raise PipelineError(f"{where}: no '{name}' column in the model registry")
        if cell != cell.strip():  # dbt's seed keeps the spaces: the two would disagree
            raise PipelineError(f"{where}: spaces around the {name} {cell!r}")
    model_id, encoder, dim_text = cells["model_id"] or "", cells["encoder"] or "", cells["dim"]
    if not model_id:
        raise PipelineError(f"{where}: a model without a model_id")
    if encoder not in ENCODERS:
        raise PipelineError(f"{where}: model {model_id} has unknown encoder {encoder!r} "
                            f"(known: {', '.join(ENCODERS)})")
    dim = int(dim_text) if dim_text and dim_text.isdigit() else None
    if dim_text and dim is None:
        raise PipelineError(f"{where}: model {model_id} has dim {dim_text!r}, not a whole number")
    if encoder == "pad_to_dim" and not dim:
        raise PipelineError(f"{where}: pad_to_dim model {model_id} needs a dim above 0")
    return ModelSpec(model_id, encoder, dim)


def resolve_models(registry: dict[str, ModelSpec], model_ids: list[str]) -> list[ModelSpec]:
    """The specs of the requested models, in order, without repeats; unknown ids are refused."""
    specs: list[ModelSpec] = []
    for model_id in dict.fromkeys(model_ids):
        if model_id not in registry:
            raise UsageError(
                f"unknown --model-id {model_id!r}; known model ids: {', '.join(registry)}"
            )
        specs.append(registry[model_id])
    return specs
