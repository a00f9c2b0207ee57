"""The bench's figures, the issue's targets as PASS/FAIL, and the files they are written to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measured number (None when the measurement was not possible: see note)."""

    label: str
    value: float | None
    unit: str
    note: str = ""

    def text(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:,.2f}"
        return f"{self.label:<50} {value:>14} {self.unit:<10} {self.note}"


@dataclass
class Target:
    """One target of the issue: measured value against a bound, lower or upper."""

    label: str
    value: float | None
    bound: float
    at_least: bool
    unit: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        met = self.value >= self.bound if self.at_least else self.value <= self.bound
        return "PASS" if met else "FAIL"

    def text(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:,.3f}{self.unit}"
        bound = f"{'>=' if self.at_least else '<='} {self.bound:g}{self.unit}"
        return f"{self.label:<50} {value:>14} {bound:>12}  {self.verdict:<4} {self.note}"


@dataclass
class Report:
    started: str
    settings: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)  # 1-minute load average around each step

    def text(self) -> str:
        width = 100
        lines = [f"numeric embedding backfill benchmark, {self.started}", "=" * width]
        lines += [f"{key}: {value}" for key, value in self.settings.items()]
        lines += ["", "measurements", "-" * width, *(f.text() for f in self.figures)]
        lines += ["", "targets (issue 3)", "-" * width, *(t.text() for t in self.targets)]
        if self.loads:
            lines += ["", "1-minute load average before -> after each step (2 CPUs: above"
                      " ~1 means other work shared the machine)", "-" * width, *self.loads]
        if self.notes:
            lines += ["", "notes", "-" * width, *self.notes]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, stamp: str) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        text_path = out_dir / f"bench-{stamp}.txt"
        json_path = out_dir / f"bench-{stamp}.json"
        text_path.write_text(self.text())
        payload = asdict(self)
        payload["targets"] = [{**asdict(t), "verdict": t.verdict} for t in self.targets]
        json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return text_path, json_path
