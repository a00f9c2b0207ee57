"""What one backfill run is asked to do (the CLI's flags, checked) and what it reports."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus.numeric.registry import FEATURES

DEFAULT_WINDOW_DAYS = 63
BATCH_WINDOWS = 20_000
# A batch's arrays grow with its values (windows x features x window_days): by default a
# batch holds as many values as BATCH_WINDOWS windows of the default length, whatever the
# windows' length.
BATCH_VALUES = BATCH_WINDOWS * len(FEATURES) * DEFAULT_WINDOW_DAYS
# A group's windows and rows reach Python as one bytea each (windows.py), which PostgreSQL
# caps at 1 GB; this keeps them far below it, and the batch's arrays within memory.
MAX_BATCH_WINDOWS = 1_000_000
# A window looks back 3 x window_days calendar days (macros/window_params.sql), which must stay
# within PostgreSQL's dates (from 4714 BC) for any as-of date from year 1: true up to 573,808
# rows. macros/window_params.sql refuses the same var.
MAX_WINDOW_DAYS = 500_000


@dataclass
class BackfillRequest:
    """What to embed: the CLI's flags, already checked for shape."""

    model_ids: list[str]
    window_days: int = DEFAULT_WINDOW_DAYS
    as_of: dt.date | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    frequency: str = "daily"
    market_id: str | None = None
    limit: int | None = None
    offset: int = 0
    instrument_ids: list[str] = field(default_factory=list)
    min_days: int | None = None
    run_tests: bool = True
    batch_size: int | None = None  # None: batch_windows' default
    skip_existing: bool = False
    dry_run: bool = False
    shard: tuple[int, int] = (0, 1)
    stage_parts: int | None = None  # None: by the run's size (stage_parts.py)
    project_dir: Path | None = None

    @property
    def batch_windows(self) -> int:
        """Windows per batch: --batch-size, else BATCH_WINDOWS, or fewer for windows longer
        than the default, so that a batch's memory does not grow with the windows' length."""
        if self.batch_size is not None:
            return self.batch_size
        return max(1, min(BATCH_WINDOWS, BATCH_VALUES // (len(FEATURES) * self.window_days)))

    def dbt_vars(self, run_id: str) -> dict[str, Any]:
        """The staging vars (macros/window_params.sql) of this request."""
        values: dict[str, Any] = {
            "run_id": run_id,
            "window_days": self.window_days,
            "offset": self.offset,
            "frequency": self.frequency,
            "model_ids": self.model_ids,
            "instrument_ids": self.instrument_ids,
            "shard_index": self.shard[0],
            "shard_count": self.shard[1],
        }
        if self.skip_existing:  # staging lists the windows already stored, unbounded
            values["skip_existing_model_ids"] = self.model_ids
        if self.dry_run:  # the pgvector companion is neither made nor dropped
            values["dry_run"] = True
        optional = {
            "as_of": self.as_of, "start_date": self.start_date, "end_date": self.end_date,
            "market_id": self.market_id, "limit": self.limit, "min_days": self.min_days,
        }
        for name, value in optional.items():
            if value is not None:
                values[name] = value.isoformat() if isinstance(value, dt.date) else value
        return values

    def nothing_selected(self) -> str:
        """Why a run that staged no window selected nothing, in the flags' words."""
        reasons = []
        if self.market_id is not None:
            reasons.append(f"market_id {self.market_id!r} has no ACTIVE EQUITY instruments "
                           f"at offset {self.offset}")
        if self.instrument_ids:
            reasons.append(f"{len(self.instrument_ids)} --instrument-id given")
        if self.start_date is not None:
            reasons.append(f"no trading days between {self.start_date} and {self.end_date}")
        return "nothing selected: " + "; ".join(reasons)


@dataclass
class BackfillSummary:
    """The run's one-line summary (stdout's last line)."""

    run_id: str
    models: list[str]
    instruments: int = 0
    as_of_dates: int = 0
    embedded: int = 0
    skipped: int = 0
    insufficient_history: int = 0
    filled: int = 0
    stale: int = 0
    rejected_rows: int = 0
    vectors: int = 0
    already_stored: int = 0
    refreshed: int = 0
    outdated_left: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"embedded={self.embedded} skipped={self.skipped} "
            f"insufficient_history={self.insufficient_history} "
            f"rejected_rows={self.rejected_rows} stale={self.stale} filled={self.filled} "
            f"instruments={self.instruments} as_of_dates={self.as_of_dates} "
            f"vectors={self.vectors} already_stored={self.already_stored} "
            f"refreshed={self.refreshed} outdated_left={self.outdated_left} "
            f"models={','.join(self.models)} run_id={self.run_id} "
            f"seconds={self.seconds:.2f}"
        )


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
