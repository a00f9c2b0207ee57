"""One backfill run: stage windows with dbt, encode them per model, store, test."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from prometheus.numeric.connection import use_resolved_server
from prometheus.numeric.dbt_runner import (
    PROJECT_NAME,
    DbtRunner,
    find_profiles_dir,
    find_project_dir,
)
from prometheus.numeric.deployment import (
    deployment_key,
    is_deployed,
    is_recorded,
    record_deployment,
    relation_exists,
    setup_node_ids,
)
from prometheus.numeric.encoders import encode
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.prefetch import prefetch
from prometheus.numeric.progress import Progress
from prometheus.numeric.registry import ModelSpec, load_registry, resolve_models
from prometheus.numeric.staging import PartStager, estimated_windows, stage_part_count
from prometheus.numeric.store import EmbeddingWriter, lock, refresh_statistics, try_lock, unlock
from prometheus.numeric.windows import BATCH_WINDOWS, WindowBatch, read_windows

log = logging.getLogger("prometheus.numeric.backfill")

WINDOWS_NODE = f"model.{PROJECT_NAME}.numeric_windows"
REJECTED_NODE = f"model.{PROJECT_NAME}.rejected_prices"
RETURNS_NODE = f"model.{PROJECT_NAME}.int_daily_returns_computed"
EMBEDDINGS_SOURCE = f"source.{PROJECT_NAME}.embeddings.numeric_window_embeddings"
INSTRUMENTS_SOURCE = f"source.{PROJECT_NAME}.historical_db.instruments"
REGISTRY_SEED_NODE = "numeric_embedding_models"
STAGED_NODES = (
    "+numeric_windows", "+rejected_prices", "numeric_window_values", "embedding_coverage",
    "stg_embeddings__numeric_window_embeddings",
)
STAGING_LOCK = "staging"
RETURNS_NODE_NAME = "int_daily_returns_computed"
WINDOWS_NODE_NAME = "numeric_windows"
# After a run, dbt checks what the run wrote against the contract: vector lengths per model,
# no NaN/inf, every window stored (and warns of stale windows). The keys' not-null and
# unique tests are left to a plain `dbt test`: the table's constraints already hold them
# for every row a run writes, and at 360,000 vectors each costs a scan of the run's rows.
RUN_CHECKS = "tag:run_checks"


@dataclass
class BackfillRequest:
    """What to embed: the CLI's flags, already checked for shape."""

    model_ids: list[str]
    window_days: int = 63
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
    batch_size: int = BATCH_WINDOWS
    skip_existing: bool = False
    shard: tuple[int, int] = (0, 1)
    stage_parts: int | None = None  # None: by the run's size (see staging.py)
    project_dir: Path | None = None

    def dbt_vars(self, run_id: str) -> dict[str, Any]:
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
        optional = {
            "as_of": self.as_of, "start_date": self.start_date, "end_date": self.end_date,
            "market_id": self.market_id, "limit": self.limit, "min_days": self.min_days,
        }
        for name, value in optional.items():
            if value is not None:
                values[name] = value.isoformat() if isinstance(value, dt.date) else value
        return values


def part_vars(index: int, parts: int) -> dict[str, int]:
    """numeric_windows' vars for one part of a run staged in parts (none for a whole run)."""
    return {"stage_part_index": index, "stage_part_count": parts} if parts > 1 else {}


@dataclass
class BackfillSummary:
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
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"embedded={self.embedded} skipped={self.skipped} "
            f"insufficient_history={self.insufficient_history} "
            f"rejected_rows={self.rejected_rows} stale={self.stale} filled={self.filled} "
            f"instruments={self.instruments} as_of_dates={self.as_of_dates} "
            f"vectors={self.vectors} already_stored={self.already_stored} "
            f"models={','.join(self.models)} run_id={self.run_id} "
            f"seconds={self.seconds:.2f}"
        )


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


RUN_COUNTS = """
select
    count(*),
    count(distinct selection_rank),
    count(distinct instrument_id),
    count(distinct as_of_date),
    count(*) filter (where window_status = 'ok'),
    count(*) filter (where window_status = 'insufficient_history'),
    count(*) filter (where rows_filled > 0),
    count(*) filter (where is_stale),
    count(*) filter (where window_status = 'already_stored')
from {windows}
where run_id = {run_id}
"""

# The rejected rows inside the run's windows: per instrument, a key-range probe of the
# prices over the span of its windows, then for each rejected row found (a few), a probe of
# the (instrument_id, as_of_date) index for one window of the run that covers it. PostgreSQL
# cannot tell how short the spans are or how few rows they hold: as joins, the first read
# every price row and the second hashed every window of the run (0.86 s for 365,500
# windows, 0.44 s as probes). offset 0 and limit 1 keep both lateral subqueries probes.
RUN_REJECTED_ROWS = """
with spans as (
    select
        instrument_id,
        min(as_of_date - lookback_days) as first_date,
        max(as_of_date) as last_date
    from {windows}
    where run_id = {run_id}
    group by instrument_id
)
select count(*)
from spans
cross join lateral (
    select rejected.trade_date
    from {rejected} as rejected
    where rejected.instrument_id = spans.instrument_id
        and rejected.trade_date between spans.first_date and spans.last_date
    offset 0
) as rejected
cross join lateral (
    select 1
    from {windows} as windows
    where windows.run_id = {run_id}
        and windows.instrument_id = spans.instrument_id
        and windows.as_of_date >= rejected.trade_date
        and windows.as_of_date - windows.lookback_days <= rejected.trade_date
    limit 1
) as covering
"""


def encode_and_store(windows: str, returns: str, embeddings: str, run_id: str,
                     specs: list[ModelSpec], window_days: int, batch_size: int = BATCH_WINDOWS,
                     replace: bool = True, on_batch: Callable[[int, int], None] | None = None,
                     conninfo: str = "", parts_landed: Iterable[object] = (None,),
                     on_staged: Callable[[int], None] | None = None,
                     on_abort: Callable[[], None] | None = None) -> int:
    """Read a staged run's 'ok' windows, encode them once per model and store them, one
    transaction per batch covering all models (it commits whole or not at all). Returns
    the vectors written; on_batch(windows encoded, vectors written) follows the progress.

    parts_landed yields once per staged part of a run staged in parts (blocking until the
    part is committed): each time, the windows staged since the last read are encoded.
    on_staged(n) tells how many windows each of those reads found. on_abort() is called
    when a batch fails, before the reading thread is stopped (it may be waiting for a part)."""
    specs = sorted(specs, key=lambda spec: spec.model_id)  # the writer's lock order
    models = [spec.model_id for spec in specs]
    encoded = stored = 0
    with psycopg.connect(conninfo, autocommit=True) as reader, \
            psycopg.connect(conninfo, autocommit=True) as writer_conn:
        writer = EmbeddingWriter(writer_conn, embeddings, windows, run_id, replace=replace)

        def staged_batches() -> Iterator[WindowBatch]:
            after_seq = 0  # window_seq grows with selection_rank, so parts land in order
            for _ in parts_landed:
                for batch in read_windows(reader, windows, returns, run_id, window_days,
                                          embeddings, models, batch_size, after_seq,
                                          on_staged):
                    after_seq = max(after_seq, int(batch.windows.bounds["window_seq"].max()))
                    yield batch

        # The next batch is read and encoded (one thread, its own connection) while this
        # one is written; only its windows and vectors are kept, not the float64 features.
        encoded_batches = prefetch(
            (batch.windows, [encode(batch.features, spec) for spec in specs])
            for batch in staged_batches())
        # closing: on a write error the reading thread stops before its connection closes.
        with contextlib.closing(encoded_batches):
            try:
                for staged, vectors in encoded_batches:
                    with writer_conn.transaction():
                        for model_bit, (spec, model_vectors) in enumerate(
                                zip(specs, vectors, strict=True)):
                            stored += writer.write(staged, model_vectors, spec, window_days,
                                                   model_bit)
                    encoded += len(staged)
                    if on_batch is not None:
                        on_batch(encoded, stored)
            except BaseException:
                if on_abort is not None:
                    on_abort()
                raise
    return stored


class Backfill:
    """Runs one request against the database the libpq variables (or .pgdata) name."""

    def __init__(self, request: BackfillRequest) -> None:
        self.request = request
        self.project_dir = find_project_dir(request.project_dir)
        registry = load_registry(self.project_dir)
        self.specs: list[ModelSpec] = resolve_models(registry, request.model_ids)
        for spec in self.specs:
            spec.vector_dim(request.window_days)  # refuse a window that does not fit: exit 2

    def run(self) -> BackfillSummary:
        started = time.monotonic()
        use_resolved_server()
        dbt = DbtRunner(self.project_dir, find_profiles_dir(self.project_dir))
        run_id = new_run_id()
        summary = BackfillSummary(run_id=run_id, models=[s.model_id for s in self.specs])
        dbt_vars = self.request.dbt_vars(run_id)

        # The lock connection lives for the whole run. Runs share the staging lock, so they
        # stage, encode and test in parallel (shards); a run that must (re)build the views
        # and seed takes it exclusively, as that swaps relations under other runs' readers.
        # The daily returns are updated incrementally inside one transaction, one run at a
        # time (their own lock), so a reader never sees a half-updated table.
        with psycopg.connect(autocommit=True) as lock_conn:
            parts = self._stage_part_count(dbt, lock_conn)
            self._stage(dbt, lock_conn, {**dbt_vars, **part_vars(0, parts)}, run_id)
            windows = dbt.relation_name(WINDOWS_NODE)
            returns = dbt.relation_name(RETURNS_NODE)
            rejected = dbt.relation_name(REJECTED_NODE)
            embeddings = dbt.relation_name(EMBEDDINGS_SOURCE)

            def stage_part(index: int) -> None:
                log.info("run %s: staging part %d of %d with dbt", run_id, index + 1, parts)
                dbt.invoke(["run", "--select", WINDOWS_NODE_NAME],
                           {**dbt_vars, **part_vars(index, parts)})

            # Parts 1.. are staged in the background while the parts before are encoded.
            with PartStager(stage_part, parts) as stager:
                summary.vectors = self._encode_and_store(windows, returns, embeddings,
                                                         run_id, parts, stager)

            def analyze_vectors() -> bool:
                # What numeric_windows' post-hook does for the staged rows (analyze_if_stale),
                # for the vectors Python wrote: the tests read them next.
                with psycopg.connect(autocommit=True) as conn:
                    return refresh_statistics(conn, embeddings, summary.vectors)

            # The ANALYZE (0.6 s and more for 360,000 vectors) runs while the run is counted.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyze") as pool:
                analyzed = pool.submit(analyze_vectors) if self.request.run_tests else None
                with psycopg.connect(autocommit=True) as conn:
                    self._count(conn, windows, rejected, summary, parts)
            if summary.embedded + summary.skipped + summary.already_stored == 0:
                raise PipelineError(self._nothing_selected())
            if analyzed is not None:
                if analyzed.result():
                    log.info("run %s: analyzed %s", run_id, embeddings)
                log.info("run %s: testing the stored vectors with dbt", run_id)
                dbt.invoke(["test", "--select", RUN_CHECKS], {"run_id": run_id})
        summary.seconds = time.monotonic() - started
        return summary

    def _stage(self, dbt: DbtRunner, lock_conn: psycopg.Connection,
               dbt_vars: dict[str, Any], run_id: str) -> None:
        manifest = dbt.manifest()
        setup_nodes = setup_node_ids(manifest)
        key = deployment_key(manifest, [*setup_nodes, RETURNS_NODE, WINDOWS_NODE])
        relations = [dbt.relation_name(node) for node in
                     (*setup_nodes, RETURNS_NODE, WINDOWS_NODE)]
        schema = manifest.nodes[WINDOWS_NODE].schema
        lock(lock_conn, STAGING_LOCK, shared=True)
        if not is_deployed(lock_conn, schema, key, relations):
            unlock(lock_conn, STAGING_LOCK, shared=True)
            if not try_lock(lock_conn, STAGING_LOCK, shared=False):
                log.info("run %s: waiting for other runs to finish before deploying the "
                         "project's views", run_id)
                lock(lock_conn, STAGING_LOCK, shared=False)
            try:
                if not is_deployed(lock_conn, schema, key, relations):
                    log.info("run %s: deploying the views and seed, staging windows with dbt",
                             run_id)
                    # The daily returns are incremental: rows computed by another version
                    # of the model must not mix with new ones, so a changed model is rebuilt.
                    returns_key = deployment_key(manifest, [RETURNS_NODE])
                    if relation_exists(lock_conn, dbt.relation_name(RETURNS_NODE)) and \
                            not is_recorded(lock_conn, schema, returns_key):
                        log.info("run %s: the daily returns model changed; rebuilding it",
                                 run_id)
                        dbt.invoke(["run", "--full-refresh", "--select", RETURNS_NODE_NAME],
                                   dbt_vars)
                    # One dbt invocation (each costs a start-up): seed, views and tables.
                    dbt.invoke(["build", "--select", REGISTRY_SEED_NODE, *STAGED_NODES,
                                "--resource-type", "seed", "--resource-type", "model"],
                               dbt_vars)
                    record_deployment(lock_conn, schema, key)
                    record_deployment(lock_conn, schema, returns_key)
                    return
            finally:
                lock(lock_conn, STAGING_LOCK, shared=True)
                unlock(lock_conn, STAGING_LOCK, shared=False)
        log.info("run %s: staging windows with dbt", run_id)
        dbt.invoke(["run", "--select", RETURNS_NODE_NAME, WINDOWS_NODE_NAME], dbt_vars)

    def _stage_part_count(self, dbt: DbtRunner, conn: psycopg.Connection) -> int:
        """--stage-parts, else by the run's estimated windows: one part for a single date or
        a --skip-existing re-run (mostly stored windows: nothing to overlap)."""
        request = self.request
        if request.stage_parts is not None:
            return request.stage_parts
        if request.as_of is not None or request.skip_existing:
            return 1
        instruments = len(request.instrument_ids)
        if request.market_id is not None:
            if request.limit is not None:
                instruments += request.limit
            else:
                row = conn.execute(
                    sql.SQL("select count(*) from {} where market_id = %s and asset_class = "
                            "'EQUITY' and status = 'ACTIVE'").format(
                                sql.SQL(dbt.relation_name(INSTRUMENTS_SOURCE))),
                    (request.market_id,)).fetchone()
                instruments += max(0, int(row[0] if row else 0) - request.offset)
        instruments = -(-instruments // request.shard[1])
        return stage_part_count(estimated_windows(request.start_date, request.end_date,
                                                  request.frequency, instruments))

    def _count(self, conn: psycopg.Connection, windows: str, rejected: str,
               summary: BackfillSummary, parts: int = 1) -> None:
        params = {"windows": sql.SQL(windows), "rejected": sql.SQL(rejected),
                  "run_id": sql.Literal(summary.run_id)}
        row = conn.execute(sql.SQL(RUN_COUNTS).format(**params)).fetchone()
        assert row is not None
        (windows_staged, ranks, summary.instruments, summary.as_of_dates, summary.embedded,
         summary.insufficient_history, summary.filled, summary.stale,
         summary.already_stored) = (int(v) for v in row)
        # Every part selects the instruments and dates again; if they changed between parts
        # (a status edited, a new trading day in the range), an instrument may have been
        # staged twice or not at all. The vectors written are right for their windows.
        if parts > 1 and (windows_staged != summary.instruments * summary.as_of_dates
                          or ranks != summary.instruments):
            raise PipelineError(
                "the selected instruments or as-of dates changed while the run was staged "
                "in parts; the vectors stored are right, re-run with --skip-existing to "
                "complete")
        # A window is skipped for one reason only: too little history.
        summary.skipped = summary.insufficient_history
        rejected_row = conn.execute(sql.SQL(RUN_REJECTED_ROWS).format(**params)).fetchone()
        summary.rejected_rows = int(rejected_row[0]) if rejected_row else 0

    def _encode_and_store(self, windows: str, returns: str, embeddings: str, run_id: str,
                          parts: int, stager: PartStager) -> int:
        """Encode and store the run's 'ok' windows, part by part as they land; returns how
        many vectors were written (with --skip-existing, keys already stored are not)."""
        models = len(self.specs)
        progress = Progress(run_id, 0)
        parts_read = windows_read = 0

        def count_parts() -> Iterator[int]:
            nonlocal parts_read
            for index in stager.landed():
                parts_read = index + 1
                yield index

        def on_staged(windows_found: int) -> None:
            # Parts not staged yet are taken to be as big as those that are.
            nonlocal windows_read
            windows_read += windows_found
            progress.expect(round(windows_read * parts / parts_read) * models)

        stored = encode_and_store(windows, returns, embeddings, run_id, self.specs,
                                  self.request.window_days, self.request.batch_size,
                                  replace=not self.request.skip_existing,
                                  on_batch=lambda encoded, _: progress.update(encoded * models),
                                  parts_landed=count_parts(), on_staged=on_staged,
                                  on_abort=stager.stop)
        progress.finish()
        return stored

    def _nothing_selected(self) -> str:
        request = self.request
        parts = []
        if request.market_id is not None:
            parts.append(f"market_id {request.market_id!r} has no ACTIVE EQUITY instruments "
                         f"at offset {request.offset}")
        if request.instrument_ids:
            parts.append(f"{len(request.instrument_ids)} --instrument-id given")
        if request.start_date is not None:
            parts.append(f"no trading days between {request.start_date} and {request.end_date}")
        return "nothing selected: " + "; ".join(parts)
