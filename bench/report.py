"""The bench's figures and the files they are written to (bench-results/)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def format_value(value: float | None) -> str:
    """A figure's value with as many digits as tell something at its size."""
    if value is None:
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


@dataclass
class Figure:
    """One measured number (None when the measurement was not possible: see note).

    The label is what bench/ab.py matches between two checkouts: keep a measurement's label
    when its meaning stays, change it when its meaning changes."""

    label: str
    value: float | None
    unit: str
    note: str = ""

    def text(self) -> str:
        return f"{self.label:<55} {format_value(self.value):>12} {self.unit:<10} {self.note}"


@dataclass
class Report:
    started: str
    settings: dict[str, Any]
    environment: dict[str, str] = field(default_factory=dict)  # machine, server, commit
    steps: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)  # 1-minute load average around each step

    def add(self, label: str, value: float | None, unit: str, note: str = "") -> None:
        self.figures.append(Figure(label, value, unit, note))

    def value(self, label: str) -> float | None:
        return next((f.value for f in self.figures if f.label == label), None)

    def add_ratio(self, label: str, top: str, bottom: str, unit: str = "x") -> None:
        """A plain ratio of two figures already recorded, when both were measured."""
        above, below = self.value(top), self.value(bottom)
        if above is not None and below:
            self.add(label, above / below, unit, f"{top} / {bottom}")

    def text(self) -> str:
        width = 100
        lines = [f"numeric embedding backfill benchmark, {self.started}", "=" * width]
        lines += [f"{key}: {value}" for key, value in
                  {**self.environment, **self.settings}.items()]
        lines += [f"steps: {', '.join(self.steps)}"]
        lines += ["", "measurements", "-" * width, *(f.text() for f in self.figures)]
        if self.loads:
            lines += ["", "1-minute load average before -> after each step (2 CPUs: above"
                      " ~1 means other work shared the machine)", "-" * width, *self.loads]
        if self.notes:
            lines += ["", "notes", "-" * width, *self.notes]
        return "\n".join(lines) + "\n"

    def markdown_table(self) -> str:
        rows = ["| Figure | Value | Unit | Note |", "|---|---:|---|---|"]
        for figure in self.figures:
            note = figure.note.replace("|", "\\|")
            rows.append(f"| {figure.label} | {format_value(figure.value)} | {figure.unit} "
                        f"| {note} |")
        return "\n".join(rows) + "\n"

    def write(self, out_dir: Path, stamp: str) -> tuple[Path, Path]:
        """bench-<stamp>.txt and .json; bench/ab.py reads the JSON's "figures" list."""
        out_dir.mkdir(parents=True, exist_ok=True)
        text_path = out_dir / f"bench-{stamp}.txt"
        json_path = out_dir / f"bench-{stamp}.json"
        text_path.write_text(self.text())
        json_path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return text_path, json_path
