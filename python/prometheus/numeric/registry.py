"""The model registry (SPEC "Model registry"), read from the dbt seed analysts join."""

from __future__ import annotations

import csv
from collections.abc import Iterator
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


COLUMNS = ("model_id", "encoder", "dim")
MAX_DIM = 2**31 - 1  # the seed's dim column is an integer
MAX_ID_LENGTH = 64  # model_id and entity_id are varchar(64) in numeric_window_embeddings


def load_registry(project_dir: Path) -> dict[str, ModelSpec]:
    """The registry seed's models. A seed that is missing, or that dbt would load otherwise
    than read here, is refused with its path and row (the CLI's one-line error, exit 1)."""
    path = project_dir / REGISTRY_SEED
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read_registry(csv.reader(handle), str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PipelineError(f"cannot read the model registry {path}: {exc}") from None


def _read_registry(reader: Iterator[list[str]], path: str) -> dict[str, ModelSpec]:
    header = next(reader, [])
    if any(header.count(column) != 1 for column in COLUMNS):
        raise PipelineError(f"{path}, row 1: the header must name each of "
                            f"{', '.join(COLUMNS)} once")
    positions = [header.index(column) for column in COLUMNS]
    registry: dict[str, ModelSpec] = {}
    # Rows numbered as a spreadsheet shows them (a quoted cell may span lines), header 1.
    for row, cells in enumerate(reader, start=2):
        where = f"{path}, row {row}"
        if len(cells) != len(header):
            raise PipelineError(f"{where}: {len(cells)} cells, the header has {len(header)}")
        model_id, encoder, dim = (cells[position] for position in positions)
        spec = _model_spec(model_id, encoder, dim, where)
        if spec.model_id in registry:
            raise PipelineError(f"{where}: model_id {spec.model_id!r} is on an earlier row too")
        registry[spec.model_id] = spec
    if not registry:
        raise PipelineError(f"{path}: no models")
    return registry


def _model_spec(model_id: str, encoder: str, dim: str, where: str) -> ModelSpec:
    for name, cell in (("model_id", model_id), ("encoder", encoder), ("dim", dim)):
        # dbt's seed keeps them in the text columns, so the CLI and dbt would disagree (dim
        # is held to the same rule).
        if cell != cell.strip():
            raise PipelineError(f"{where}: spaces around the {name} {cell!r}")
    if not 0 < len(model_id) <= MAX_ID_LENGTH or not model_id.isprintable():
        raise PipelineError(f"{where}: model_id {model_id!r} is not 1 to {MAX_ID_LENGTH} "
                            "printable characters")
    if encoder not in ENCODERS:
        raise PipelineError(f"{where}: model {model_id!r} has unknown encoder {encoder!r} "
                            f"(known: {', '.join(ENCODERS)})")
    if encoder == "flatten":
        if dim:
            raise PipelineError(f"{where}: flatten model {model_id!r} takes no dim "
                                "(its vectors hold 3 x window_days values)")
        return ModelSpec(model_id, encoder, None)
    digits = dim.isascii() and dim.isdigit() and len(dim) <= len(str(MAX_DIM))
    if not digits or not 0 < int(dim) <= MAX_DIM:
        raise PipelineError(f"{where}: pad_to_dim model {model_id!r} needs a dim, a whole "
                            f"number from 1 to {MAX_DIM}, not {dim!r}")
    return ModelSpec(model_id, encoder, int(dim))


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
