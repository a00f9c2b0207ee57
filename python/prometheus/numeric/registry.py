"""The model registry (SPEC "Model registry"), read from the dbt seed analysts join."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from prometheus.numeric.errors import UsageError

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
    path = project_dir / REGISTRY_SEED
    registry: dict[str, ModelSpec] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            encoder = row["encoder"].strip()
            if encoder not in ENCODERS:
                raise ValueError(f"{path}: model {row['model_id']} has unknown encoder {encoder}")
            dim = int(row["dim"]) if row["dim"].strip() else None
            if encoder == "pad_to_dim" and not dim:
                raise ValueError(f"{path}: pad_to_dim model {row['model_id']} needs a dim")
            registry[row["model_id"].strip()] = ModelSpec(row["model_id"].strip(), encoder, dim)
    return registry


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
