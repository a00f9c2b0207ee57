"""The model registry seed as the CLI reads it: a malformed seed is refused with its path and
line (one line on stderr, exit 1), never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.registry import REGISTRY_SEED, ModelSpec, load_registry

PROJECT_DIR = Path(__file__).resolve().parents[2]
HEADER = "model_id,encoder,dim,description\n"


def registry_of(tmp_path: Path, text: str, encoding: str = "utf-8") -> dict[str, ModelSpec]:
    seed = tmp_path / REGISTRY_SEED
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_text(text, encoding=encoding)
    return load_registry(tmp_path)


def test_the_projects_registry_reads_as_its_seed() -> None:
    registry = load_registry(PROJECT_DIR)
    assert registry["num-stab-core-v1"] == ModelSpec("num-stab-core-v1", "pad_to_dim", 384)
    assert registry["numeric-simple-v1"] == ModelSpec("numeric-simple-v1", "flatten", None)
    assert len(registry) == 6


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    registry = registry_of(tmp_path, HEADER + "m1,pad_to_dim,384,x\n", encoding="utf-8-sig")
    assert registry == {"m1": ModelSpec("m1", "pad_to_dim", 384)}


@pytest.mark.parametrize(("rows", "message"), [
    ("m1,pad_to_dim,0,zero\n", "line 2: pad_to_dim model m1 needs a dim above 0"),
    ("m1,pad_to_dim,,blank\n", "line 2: pad_to_dim model m1 needs a dim above 0"),
    ("m1,pad_to_dim,384.0,x\n", "line 2: model m1 has dim '384.0', not a whole number"),
    ("m1,pad_to_dim,384,x\nm2,Pad_To_Dim,384,x\n", "line 3: model m2 has unknown encoder"),
    ("m1,pad_to_dim\n", "line 2: no 'dim' column in the model registry"),
    ("m1, pad_to_dim,384,x\n", "line 2: spaces around the encoder ' pad_to_dim'"),
    (",pad_to_dim,384,x\n", "line 2: a model without a model_id"),
])
def test_a_malformed_registry_is_refused_naming_its_line(tmp_path: Path, rows: str,
                                                          message: str) -> None:
    with pytest.raises(PipelineError,
                       match=re.escape(f"numeric_embedding_models.csv, {message}")):
        registry_of(tmp_path, HEADER + rows)


def test_a_renamed_column_a_missing_seed_and_bad_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="line 2: no 'dim' column"):
        registry_of(tmp_path, "model_id,encoder,dims,description\nm1,pad_to_dim,384,x\n")
    with pytest.raises(PipelineError, match=r"cannot read the model registry .*No such file"):
        load_registry(tmp_path / "elsewhere")
    (tmp_path / REGISTRY_SEED).write_bytes(HEADER.encode() + b"m\xff,flatten,,x\n")
    with pytest.raises(PipelineError, match=r"cannot read the model registry .*can't decode"):
        load_registry(tmp_path)
