"""The model registry seed as the CLI reads it: a seed that is malformed, or that dbt would
load otherwise, is refused with its path and row (one line on stderr, exit 1), never a
traceback."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from prometheus.numeric.errors import PipelineError
from prometheus.numeric.registry import REGISTRY_SEED, ModelSpec, load_registry

PROJECT_DIR = Path(__file__).resolve().parents[2]
HEADER = "model_id,encoder,dim,description\n"


def registry_of(tmp_path: Path, text: bytes) -> dict[str, ModelSpec]:
    seed = tmp_path / REGISTRY_SEED
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_bytes(text)
    return load_registry(tmp_path)


def test_the_projects_registry_reads_as_its_seed() -> None:
    with (PROJECT_DIR / REGISTRY_SEED).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    registry = load_registry(PROJECT_DIR)
    assert list(registry) == [row["model_id"] for row in rows]
    assert registry["num-stab-core-v1"] == ModelSpec("num-stab-core-v1", "pad_to_dim", 384)
    assert registry["numeric-simple-v1"] == ModelSpec("numeric-simple-v1", "flatten", None)


def test_a_byte_order_mark_and_a_multi_line_description_are_read(tmp_path: Path) -> None:
    text = "\ufeff" + HEADER + 'm1,pad_to_dim,384,"two\nlines"\nm2,flatten,,x\n'
    assert registry_of(tmp_path, text.encode()) == {
        "m1": ModelSpec("m1", "pad_to_dim", 384), "m2": ModelSpec("m2", "flatten", None)}


@pytest.mark.parametrize(("rows", "row", "message"), [
    ("m1,pad_to_dim,0,zero\n", 2,
     "pad_to_dim model 'm1' needs a dim, a whole number from 1 to 2147483647, not '0'"),
    ("m1,pad_to_dim,,blank\n", 2, "pad_to_dim model 'm1' needs a dim"),
    ("m1,pad_to_dim,384.0,x\n", 2, "not '384.0'"),
    ("m1,pad_to_dim,-384,x\n", 2, "not '-384'"),
    ("m1,pad_to_dim,+384,x\n", 2, "not '+384'"),
    ("m1,pad_to_dim,\u0663,x\n", 2, "not '\u0663'"),  # a digit, but not one PostgreSQL reads
    ("m1,pad_to_dim,2147483648,x\n", 2, "not '2147483648'"),
    ("m1,pad_to_dim," + "9" * 5000 + ",x\n", 2, "pad_to_dim model 'm1' needs a dim"),
    ("m1,flatten,384,x\n", 2, "flatten model 'm1' takes no dim"),
    ("m1,pad_to_dim,384,x\nm2,Pad_To_Dim,384,x\n", 3, "model 'm2' has unknown encoder"),
    ("m1,pad_to_dim\n", 2, "2 cells, the header has 4"),
    ("m1,pad_to_dim,384,a,b\n", 2, "5 cells, the header has 4"),
    ("m1,pad_to_dim,384,x\n\n", 3, "0 cells, the header has 4"),
    ("m1, pad_to_dim,384,x\n", 2, "spaces around the encoder ' pad_to_dim'"),
    (",pad_to_dim,384,x\n", 2, "model_id '' is not 1 to 64 printable characters"),
    ("m" * 65 + ",pad_to_dim,384,x\n", 2, "is not 1 to 64 printable characters"),
    ('"m\n1",pad_to_dim,384,x\n', 2, "model_id 'm\\n1' is not 1 to 64 printable"),
    ("m1,pad_to_dim,384,x\nm1,flatten,,y\n", 3, "model_id 'm1' is on an earlier row"),
])
def test_a_malformed_row_is_refused_naming_it(tmp_path: Path, rows: str, row: int,
                                              message: str) -> None:
    where = re.escape(f"numeric_embedding_models.csv, row {row}: ")
    with pytest.raises(PipelineError, match=where + ".*" + re.escape(message)):
        registry_of(tmp_path, (HEADER + rows).encode())


@pytest.mark.parametrize(("text", "message"), [
    (b"", "row 1: the header must name each of model_id, encoder, dim once"),
    (HEADER.encode(), "numeric_embedding_models.csv: no models"),
    (b"model_id,encoder,dims\nm1,pad_to_dim,384\n", "row 1: the header must name each of"),
    (b"model_id,encoder,dim,dim\nm1,pad_to_dim,384,3\n", "row 1: the header must name each"),
    (HEADER.encode() + b"m\xff,flatten,,x\n", "cannot read the model registry"),
])
def test_a_header_without_models_or_columns_and_bad_bytes_are_refused(
        tmp_path: Path, text: bytes, message: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(message)):
        registry_of(tmp_path, text)


def test_a_missing_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"cannot read the model registry .*No such file"):
        load_registry(tmp_path)
