"""DbtRunner against the project's PostgreSQL: one runner, several runs of the models that
read ephemeral models (dbt compiles into the manifest it is given); and the --vars it hands
dbt, read back as they were."""

from __future__ import annotations

import pytest
import yaml

from prometheus.numeric.dbt_runner import vars_text

from conftest import Database


def _windows(db: Database, run_id: str) -> int:
    return int(db.value("select count(*) from analytics.numeric_windows where run_id = %s",
                        (run_id,)))


def test_one_runner_stages_windows_twice(demo_db: Database, original_run) -> None:
    with demo_db.dbt_runner() as runner:
        for run_id in ("runner-twice-1", "runner-twice-2"):
            runner.invoke(["run", "--select", "numeric_windows"],
                          {"run_id": run_id, "as_of": "2025-01-31", "market_id": "US_EQ",
                           "limit": 7, "run_in_flight": True})
            assert _windows(demo_db, run_id) == 7


@pytest.mark.parametrize("text", [
    "US_EQ_\U0001D11E",  # outside Unicode's first plane: JSON's escape is a surrogate pair
    "a\x85b",  # NEL: YAML reads it raw as a line break
    "a\x7fb\x9f\ufffe\uffff",  # YAML refuses these raw
    "O'Brien /* */ ; --", 'tab\t"quote"\\', "&a *b !c %d @e `f", "- x: y", "\x00\u2028\ufeff",
])
def test_dbt_reads_the_vars_back_as_they_were(text: str) -> None:
    """--vars as dbt parses them: YAML, with the C loader where PyYAML has it."""
    dbt_vars = {"market_id": text, "instrument_ids": [text, "US_EQ_0001"], "limit": 5}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert yaml.load(vars_text(dbt_vars), Loader=loader) == dbt_vars
