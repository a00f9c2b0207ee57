"""bench/ab.py's results: each run's figures from its bench-results JSON, matched by label
between the two sides, as a markdown table of medians and individual values."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import format_value


@dataclass
class SideRuns:
    """One side's runs: per run, label -> value (None: measured n/a); units by label."""

    name: str  # "A" or "B"
    checkout: Path
    commit: str
    args: str
    runs: list[dict[str, float | None]] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    servers: set[str] = field(default_factory=set)  # as the runs' JSON name it, when they do

    def labels(self) -> list[str]:
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run))
        return list(seen)

    def values(self, label: str) -> list[float | None]:
        return [run.get(label) for run in self.runs]


def load_label_map(path: Path | None) -> dict[str, str]:
    """A JSON object {"label as a bench version reports it": "label to compare under"}."""
    if path is None:
        return {}
    mapping = json.loads(path.read_text())
    if not isinstance(mapping, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in mapping.items()):
        raise ValueError(f"{path}: a label map is a JSON object of label strings")
    return mapping


def read_run(path: Path, label_map: dict[str, str], side: SideRuns) -> None:
    """Add one bench-results JSON to side: its figures, and, for harnesses older than this
    one, its issue-3 targets (ratios and the like) under their own labels."""
    payload = json.loads(path.read_text())
    run: dict[str, float | None] = {}
    entries = [*payload.get("figures", []), *payload.get("targets", [])]
    for entry in entries:
        label = label_map.get(entry["label"], entry["label"])
        if label in run:
            continue  # a figure wins over a target of the same label
        value = entry.get("value")
        run[label] = float(value) if isinstance(value, (int, float)) else None
        side.units.setdefault(label, str(entry.get("unit", "")).strip())
    side.runs.append(run)
    server = payload.get("environment", {}).get("server")
    if server:
        side.servers.add(str(server))


def _median(values: list[float | None]) -> float | None:
    measured = [value for value in values if value is not None]
    return statistics.median(measured) if measured else None


def _runs(values: list[float | None]) -> str:
    return ", ".join(format_value(value) for value in values)


def markdown(a: SideRuns, b: SideRuns, server: str, address: str, machine: str,
             title: str) -> str:
    """The comparison: every label both sides report, in B's order."""
    a_labels, b_labels = a.labels(), b.labels()
    common = [label for label in b_labels if label in a_labels]
    lines = [
        f"### A/B on {server}: {title}",
        "",
        f"{machine}; server at {address}; {len(a.runs)} A and {len(b.runs)} B runs with "
        "results, interleaved A, B, A, B, ... on that server, each side its own database, "
        "harness and venv.",
        "",
        f"- A: `{a.checkout}` at `{a.commit}`, bench args `{a.args}`",
        f"- B: `{b.checkout}` at `{b.commit}`, bench args `{b.args}`",
        "",
        f"| Figure ({server}) | Unit | A median | B median | B / A | A runs | B runs |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for label in common:
        a_values, b_values = a.values(label), b.values(label)
        a_median, b_median = _median(a_values), _median(b_values)
        ratio = (format_value(b_median / a_median)
                 if a_median and b_median is not None else "n/a")
        unit = b.units.get(label) or a.units.get(label, "")
        if a.units.get(label, unit) != unit:
            unit = f"{a.units.get(label)} / {unit} (differ!)"
        lines.append(f"| {label} | {unit} | {format_value(a_median)} | "
                     f"{format_value(b_median)} | {ratio} | {_runs(a_values)} | "
                     f"{_runs(b_values)} |")
    for side, own, other in ((a, a_labels, b_labels), (b, b_labels, a_labels)):
        only = [label for label in own if label not in other]
        if only:
            lines += ["", f"Only {side.name} reports (a --label-map can match them): "
                      + "; ".join(f"`{label}`" for label in only)]
    failures = a.failures + b.failures
    if failures:
        lines += ["", "Runs without results:", *(f"- {failure}" for failure in failures)]
    servers = a.servers | b.servers
    if len(servers) > 1:
        lines += ["", "The runs name different servers: " + "; ".join(sorted(servers))]
    return "\n".join(lines) + "\n"
