"""Documentation an analyst can rely on: `dbt docs generate` runs clean on the demo database,
and every source, model, seed, analysis, column and macro (with its arguments) is described;
the analyses compile and run."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conftest import Database

PACKAGE = "prometheus_numeric"
SIGNATURE = re.compile(r"{%-?\s*(?:macro|test)\s+\w+\s*\((.*?)\)\s*-?%}", re.S)


@pytest.fixture(scope="module")
def docs(demo_db: Database, original_run, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("docs_target")
    result = demo_db.dbt("docs", "generate", "--target-path", str(target))
    assert result.returncode == 0, result.error
    assert result.warnings == []
    return {"manifest": json.loads((target / "manifest.json").read_text()),
            "catalog": json.loads((target / "catalog.json").read_text()),
            "target": target}


def project_nodes(manifest: dict[str, Any], *kinds: str) -> dict[str, Any]:
    return {key: node for key, node in manifest["nodes"].items()
            if node["package_name"] == PACKAGE and node["resource_type"] in kinds}


def test_every_node_and_source_is_described(docs: dict[str, Any]) -> None:
    manifest = docs["manifest"]
    nodes = project_nodes(manifest, "model", "seed", "analysis")
    assert len(nodes) >= 9 + 1 + 5
    assert "model.prometheus_numeric.embedding_coverage" in nodes
    undescribed = [key for key, node in nodes.items() if not node["description"].strip()]
    sources = manifest["sources"].values()
    undescribed += [s["unique_id"] for s in sources
                    if not (s["description"].strip() and s["source_description"].strip())]
    assert undescribed == []


def test_every_column_is_described(docs: dict[str, Any], demo_db: Database,
                                   has_pgvector: bool) -> None:
    manifest, catalog = docs["manifest"], docs["catalog"]
    documented = {**project_nodes(manifest, "model", "seed"), **manifest["sources"]}
    if not has_pgvector:  # no companion table to compare with
        del documented[f"source.{PACKAGE}.embeddings.numeric_window_vectors"]
    actual: dict[str, set[str]] = {
        key: set(entry["columns"]) for key, entry in {**catalog["nodes"],
                                                      **catalog["sources"]}.items()}
    # Ephemeral models have no relation: ask PostgreSQL for their compiled query's columns.
    with demo_db.connect() as conn:
        for key, node in documented.items():
            if node.get("config", {}).get("materialized") == "ephemeral":
                query = sql.SQL("select * from ({}) as ephemeral limit 0").format(
                    sql.SQL(node["compiled_code"]))
                cursor = conn.execute(query)
                assert cursor.description is not None
                actual[key] = {column.name for column in cursor.description}
    assert set(documented) == set(actual), "a documented node has no relation, or vice versa"
    problems = []
    for key, columns in actual.items():
        described = {name: column["description"].strip()
                     for name, column in documented[key]["columns"].items()}
        problems += [f"{key}.{name}: undocumented" for name in columns - set(described)]
        problems += [f"{key}.{name}: no such column" for name in set(described) - columns]
        problems += [f"{key}.{name}: empty description"
                     for name, text in described.items() if not text]
    assert problems == []


def test_every_macro_and_argument_is_described(docs: dict[str, Any]) -> None:
    macros = {key: macro for key, macro in docs["manifest"]["macros"].items()
              if macro["package_name"] == PACKAGE}
    assert len(macros) >= 20
    problems = []
    for key, macro in macros.items():
        if not macro["description"].strip():
            problems.append(f"{key}: no description")
        match = SIGNATURE.search(macro["macro_sql"])
        assert match, key
        expected = [part.split("=")[0].strip() for part in match.group(1).split(",")
                    if part.strip()]
        listed = [argument["name"] for argument in macro["arguments"]]
        if listed != expected:
            problems.append(f"{key}: arguments {listed} != signature {expected}")
        problems += [f"{key}.{argument['name']}: no description"
                     for argument in macro["arguments"] if not argument["description"].strip()]
    assert problems == []


def test_analyses_compile_and_answer(docs: dict[str, Any], demo_db: Database,
                                    has_pgvector: bool) -> None:
    compiled = Path(docs["target"]) / "compiled" / PACKAGE / "analyses"
    queries = {path.stem: path.read_text() for path in compiled.glob("*.sql")}
    assert set(queries) == {
        "original_inspection_query", "latest_window_of_one_instrument",
        "rejected_rows_of_a_market", "coverage_of_a_date_range", "one_vector_decoded",
        "nearest_windows_of_one_window"}
    if not has_pgvector:  # similarity search is off: similar_windows refuses, saying why
        with demo_db.connect() as conn, pytest.raises(psycopg.errors.FeatureNotSupported,
                                                      match="needs pgvector"):
            conn.execute(queries.pop("nearest_windows_of_one_window"))
    with demo_db.connect() as conn:
        answers = {name: conn.execute(query).fetchall() for name, query in queries.items()}
    assert answers["original_inspection_query"][0][0:2] == ("INSTRUMENT", "num-stab-core-v1")
    assert answers["original_inspection_query"][0][3:] == (1536, 1536)
    latest = answers["latest_window_of_one_instrument"]
    assert [row[:2] + row[5:] for row in latest] == [
        ("US_EQ_0011", "num-stab-core-v1", 61, 2, 0, 1536)]
    rejected = answers["rejected_rows_of_a_market"]
    assert len(rejected) == 13 and {row[4] for row in rejected} >= {"close_nan", "volume_null"}
    coverage = {row[0].isoformat(): row for row in answers["coverage_of_a_date_range"]}
    assert coverage["2025-01-31"][1:4] == (500, 496, 4)
    (decoded,) = answers["one_vector_decoded"]
    assert decoded[0] == "US_EQ_0011" and decoded[2] == 384 and decoded[5] == 384 - 3 * 63
    assert decoded[3][2] == 0  # the oldest row is filled: log_return 0
    assert -1 <= decoded[6] <= 1
    if not has_pgvector:
        return
    nearest = answers["nearest_windows_of_one_window"]
    assert len(nearest) == 5 and ("US_EQ_0011", dt.date(2025, 1, 31)) not in {
        row[:2] for row in nearest}
    assert [row[2] for row in nearest] == sorted(row[2] for row in nearest)
    assert all(row[3] < row[4] <= row[1] for row in nearest)  # the neighbours' windows
