"""One backfill run, step by step: stage the windows with dbt, encode and store them, count
what the run did, test what it stored, and finish (its staged rows supersede older runs')."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from prometheus.numeric import queries
from prometheus.numeric.connection import (
    ResolvedServer,
    check_dbt_database,
    use_resolved_server,
)
from prometheus.numeric.dbt_runner import DbtRunner
from prometheus.numeric.deployment import Deployment
from prometheus.numeric.encoders import encode
from prometheus.numeric.errors import PipelineError, first_line
from prometheus.numeric.progress import Progress
from prometheus.numeric.project import (
    ALREADY_STORED_NODE,
    EMBEDDINGS_SOURCE,
    INSTRUMENTS_SOURCE,
    REJECTED_NODE,
    RETURNS_NODE,
    VECTORS_SOURCE,
    WINDOWS_NODE,
    find_profiles_dir,
    find_project_dir,
)
from prometheus.numeric.registry import ModelSpec, load_registry, resolve_models
from prometheus.numeric.run_request import BackfillRequest, BackfillSummary, new_run_id
from prometheus.numeric.stage_parts import PartStager, stage_part_count
from prometheus.numeric.store import EmbeddingWriter, Written, refresh_statistics
from prometheus.numeric.window_vectors import companion, fill_missing
from prometheus.numeric.windows import WindowBatch, read_windows

log = logging.getLogger("prometheus.numeric.backfill")

# After a run, dbt checks what the run wrote against the contract: vector lengths per model,
# no NaN/inf, every window stored (and warns of stale windows). The keys' not-null and
# unique tests are left to a plain `dbt test`: the table's constraints already hold them.
RUN_CHECKS = "tag:run_checks"


@dataclass(frozen=True)
class Relations:
    """The relations a run reads and writes, as dbt names them."""

    windows: str
    returns: str
    rejected: str
    already_stored: str  # the keys a --skip-existing run found stored (not staged)
    embeddings: str
    vectors: str | None  # the pgvector companion, when the database has it

    @classmethod
    def of(cls, dbt: DbtRunner, conn: psycopg.Connection) -> Relations:
        """Read after staging: dbt's on-run-start hook has made the companion if it can."""
        names = [dbt.relation_name(node) for node in (WINDOWS_NODE, RETURNS_NODE, REJECTED_NODE,
                                                      ALREADY_STORED_NODE, EMBEDDINGS_SOURCE)]
        return cls(*names, companion(conn, dbt.relation_name(VECTORS_SOURCE)))


def store_batch(writer: EmbeddingWriter, batch: WindowBatch, specs: list[ModelSpec],
                window_days: int) -> Written:
    """Encode one batch once per model (bit model_bit of its stored_models) and store it."""
    written = Written()
    try:
        for model_bit, spec in enumerate(specs):
            written.add(writer.write(batch.windows, encode(batch.features, spec), spec,
                                     window_days, model_bit))
    except psycopg.errors.StringDataRightTruncation as exc:
        # The keys' other values are checked before the run (model ids) or constant: an
        # instrument id longer than entity_id allows. PostgreSQL's message names the type; its
        # context names the table and the COPY line; the user needs the instrument.
        longest = max(batch.windows.instrument_ids.values(), key=len)
        where = (exc.diag.context or "").strip().splitlines()
        raise PipelineError(
            f"{first_line(exc)}"
            f"{f' ({where[0]})' if where else ''}: the batch's longest instrument_id is "
            f"{longest!r} ({len(longest)} characters)") from exc
    return written


def encode_and_store(relations: Relations, run_id: str, specs: list[ModelSpec],
                     request: BackfillRequest, progress: Progress,
                     parts_landed: Iterable[int] = (0,)) -> Written:
    """Read the run's 'ok' windows, encode them once per model and store them, one
    transaction per batch covering all models (it commits whole or not at all; a --dry-run
    rolls each back); returns the vectors written and refreshed. With --skip-existing,
    stored keys are rewritten only when outdated. parts_landed yields once per staged part
    (stage_parts.py): each time, the windows staged since the last read are encoded."""
    specs = sorted(specs, key=lambda spec: spec.model_id)  # the writers' lock order
    models = [spec.model_id for spec in specs]
    total = Written()
    with psycopg.connect(autocommit=True) as reader, \
            psycopg.connect(autocommit=True) as writer_conn:
        writer = EmbeddingWriter(writer_conn, relations.embeddings, run_id,
                                 replace=not request.skip_existing,
                                 vectors_relation=relations.vectors)
        last_rank = 0  # parts land in selection_rank order
        for _ in parts_landed:
            batches = read_windows(reader, relations.windows, relations.returns, run_id,
                                   request.window_days, relations.embeddings, models,
                                   request.batch_windows, after_rank=last_rank)
            # One batch at a time: read, encode, write (overlapping them gained nothing end
            # to end on the bench; docs/performance.md).
            with contextlib.closing(batches):
                for batch in batches:
                    with writer_conn.transaction(force_rollback=request.dry_run):
                        total.add(store_batch(writer, batch, specs, request.window_days))
                    progress.advance(len(batch.windows) * len(specs))
                    last_rank = int(batch.windows.bounds["selection_rank"].max())
    return total


class Backfill:
    """Runs one request against the server libpq's rules name (connection.py)."""

    def __init__(self, request: BackfillRequest) -> None:
        self.request = request
        self.project_dir = find_project_dir(request.project_dir)
        self.specs = resolve_models(load_registry(self.project_dir), request.model_ids)
        for spec in self.specs:
            spec.vector_dim(request.window_days)  # refuse a window that does not fit: exit 2

    def run(self) -> BackfillSummary:
        started = time.monotonic()
        server = use_resolved_server()
        dbt = DbtRunner(self.project_dir, find_profiles_dir(self.project_dir))
        summary = BackfillSummary(run_id=new_run_id(), models=[s.model_id for s in self.specs])
        check_dbt_database(dbt.manifest().nodes[WINDOWS_NODE].database, server)
        # This connection holds the run's locks until the run ends: in flight (its staged
        # rows are never pruned meanwhile) and the staging lock, shared (no redeploy).
        with psycopg.connect(autocommit=True) as run_conn:
            run_conn.execute(queries.RUN_IN_FLIGHT_LOCK,
                             (queries.LOCK_NAMESPACE, summary.run_id))
            parts = stage_part_count(self.request, functools.partial(
                self.market_instruments, dbt, run_conn))
            self.stage(dbt, run_conn, server, summary.run_id, parts)
            relations = Relations.of(dbt, run_conn)
            if relations.vectors and not self.request.dry_run:
                fill_missing(run_conn, relations.embeddings, relations.vectors)
            stage_part = functools.partial(self.stage_part, dbt, server, summary.run_id, parts)
            with PartStager(stage_part, parts) as stager:
                written = self.encode_and_store(run_conn, relations, summary.run_id, stager)
            summary.vectors, summary.refreshed = written.vectors, written.refreshed
            self.count(run_conn, relations, summary)
            if self.request.dry_run:
                self.forget(run_conn, relations, summary.run_id)
            else:
                if self.request.run_tests:
                    self.test(dbt, run_conn, relations, server, summary)
                self.finish(dbt, summary.run_id)
        summary.seconds = time.monotonic() - started
        return summary

    def dbt_vars(self, server: ResolvedServer, run_id: str, part: int = 0,
                 parts: int = 1) -> dict[str, object]:
        # cli_server: dbt refuses a target that is not this server (check_target_server);
        # run_in_flight: the run prunes superseded rows itself when it is done (finish).
        values = {**self.request.dbt_vars(run_id), "cli_server": server.identity,
                  "run_in_flight": True}
        if parts > 1:
            values.update(stage_part_index=part, stage_part_count=parts)
        return values

    @staticmethod
    def market_instruments(dbt: DbtRunner, conn: psycopg.Connection, market_id: str) -> int:
        """An upper bound of the instruments the market selects, to size the parts."""
        row = conn.execute(sql.SQL(queries.MARKET_INSTRUMENTS).format(
            instruments=sql.SQL(dbt.relation_name(INSTRUMENTS_SOURCE))), (market_id,)).fetchone()
        return int(row[0]) if row else 0

    def stage(self, dbt: DbtRunner, run_conn: psycopg.Connection, server: ResolvedServer,
              run_id: str, parts: int) -> None:
        """Stage the run's windows (its part 0 when it is staged in parts)."""
        Deployment(dbt).stage(run_conn, dbt, self.dbt_vars(server, run_id, 0, parts), run_id,
                              self.request.skip_existing)

    def stage_part(self, dbt: DbtRunner, server: ResolvedServer, run_id: str, parts: int,
                   part: int) -> None:
        log.info("run %s: staging part %d of %d with dbt", run_id, part + 1, parts)
        Deployment.stage_part(dbt, self.dbt_vars(server, run_id, part, parts),
                              self.request.skip_existing)

    def encode_and_store(self, conn: psycopg.Connection, relations: Relations, run_id: str,
                         stager: PartStager) -> Written:
        progress = Progress(run_id, 0)

        def expect_as_staged() -> Iterator[int]:
            # Parts not staged yet are taken to be as big as those that are.
            windows, last_seq = 0, 0
            for part in stager.landed():
                landed = stager.landed_count  # before the count: it may only see more
                row = conn.execute(sql.SQL(queries.OK_WINDOWS_SINCE).format(
                    windows=sql.SQL(relations.windows), run_id=sql.Literal(run_id),
                    after_seq=sql.Literal(last_seq))).fetchone()
                if row:
                    windows, last_seq = windows + int(row[0]), int(row[1])
                progress.total = round(windows * stager.part_count / landed) * len(self.specs)
                yield part

        stored = encode_and_store(relations, run_id, self.specs, self.request, progress,
                                  expect_as_staged())
        progress.finish()
        return stored

    def count(self, conn: psycopg.Connection, relations: Relations,
              summary: BackfillSummary) -> None:
        run_id = sql.Literal(summary.run_id)
        run_windows = sql.SQL(queries.RUN_WINDOWS).format(
            windows=sql.SQL(relations.windows), run_id=run_id,
            already_stored=sql.SQL(relations.already_stored))
        params = {"windows": sql.SQL(relations.windows), "rejected": sql.SQL(relations.rejected),
                  "run_id": run_id, "run_windows": run_windows}
        row = conn.execute(sql.SQL(queries.RUN_COUNTS).format(**params)).fetchone()
        assert row is not None
        (summary.instruments, summary.as_of_dates, summary.embedded,
         summary.insufficient_history, summary.filled, summary.stale,
         summary.already_stored) = (int(value) for value in row[:7])
        first_day, last_day = row[7:]
        windows = summary.embedded + summary.insufficient_history + summary.already_stored
        if windows == 0:
            raise PipelineError(self.request.nothing_selected())
        if windows != summary.instruments * summary.as_of_dates:
            # Each part selects the instruments and dates again (stage_parts.py).
            log.warning("run %s: the instruments or dates selected changed while the run was "
                        "staged in parts; its vectors are right, re-run with --skip-existing "
                        "to complete it", summary.run_id)
        summary.skipped = summary.insufficient_history  # the one reason to skip a window
        rejected = conn.execute(sql.SQL(queries.RUN_REJECTED_ROWS).format(
            **params, first_day=sql.Literal(first_day), last_day=sql.Literal(last_day)
        )).fetchone()
        summary.rejected_rows = int(rejected[0]) if rejected else 0
        left = conn.execute(sql.SQL(queries.RUN_OUTDATED_LEFT).format(
            **params, embeddings=sql.SQL(relations.embeddings))).fetchone()
        summary.outdated_left = int(left[0]) if left else 0

    def test(self, dbt: DbtRunner, conn: psycopg.Connection, relations: Relations,
             server: ResolvedServer, summary: BackfillSummary) -> None:
        # The tests read the vectors just written: plan them on statistics that know them.
        if refresh_statistics(conn, relations.embeddings, summary.vectors):
            log.info("run %s: analyzed %s", summary.run_id, relations.embeddings)
        log.info("run %s: testing the stored vectors with dbt", summary.run_id)
        dbt.invoke(["test", "--select", RUN_CHECKS],
                   {"run_id": summary.run_id, "cli_server": server.identity})

    def forget(self, conn: psycopg.Connection, relations: Relations, run_id: str) -> None:
        """A --dry-run leaves no staged row behind (and prunes nothing, uses up no change)."""
        conn.execute(sql.SQL(queries.FORGET_RUN).format(
            windows=sql.SQL(relations.windows), run_id=sql.Literal(run_id),
            already_stored=sql.SQL(relations.already_stored)))

    def finish(self, dbt: DbtRunner, run_id: str) -> None:
        """The run is done: its staged rows now supersede older runs' rows of its windows,
        and the change log keeps only what still outdates a vector. (A run-operation runs no
        on-run-start hook: the run's earlier invocations checked the server.)"""
        dbt.invoke(["run-operation", "prune_finished_run", "--args",
                    json.dumps({"run_id": run_id})])
