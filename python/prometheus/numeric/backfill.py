"""One backfill run, step by step: stage the windows with dbt, encode and store them, count
what the run did, test what it stored, and finish (its staged rows supersede older runs')."""

from __future__ import annotations

import contextlib
import json
import logging
import time
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
from prometheus.numeric.errors import PipelineError
from prometheus.numeric.progress import Progress
from prometheus.numeric.project import (
    ALREADY_STORED_NODE,
    EMBEDDINGS_SOURCE,
    REJECTED_NODE,
    RETURNS_NODE,
    VECTORS_SOURCE,
    WINDOWS_NODE,
    find_profiles_dir,
    find_project_dir,
)
from prometheus.numeric.registry import ModelSpec, load_registry, resolve_models
from prometheus.numeric.run_request import BackfillRequest, BackfillSummary, new_run_id
from prometheus.numeric.store import EmbeddingWriter, Written, refresh_statistics
from prometheus.numeric.window_vectors import companion, fill_missing
from prometheus.numeric.windows import read_windows

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


def encode_and_store(relations: Relations, run_id: str, specs: list[ModelSpec],
                     request: BackfillRequest, progress: Progress) -> Written:
    """Read the run's 'ok' windows, encode them once per model and store them, one
    transaction per batch covering all models (it commits whole or not at all; a --dry-run
    rolls each back); returns the vectors written and refreshed. With --skip-existing,
    stored keys are rewritten only when outdated."""
    specs = sorted(specs, key=lambda spec: spec.model_id)  # the writers' lock order
    models = [spec.model_id for spec in specs]
    total = Written()
    with psycopg.connect(autocommit=True) as reader, \
            psycopg.connect(autocommit=True) as writer_conn:
        writer = EmbeddingWriter(writer_conn, relations.embeddings, run_id,
                                 replace=not request.skip_existing,
                                 vectors_relation=relations.vectors)
        batches = read_windows(reader, relations.windows, relations.returns, run_id,
                               request.window_days, relations.embeddings, models,
                               request.batch_size)
        # One batch at a time: read, encode, write (overlapping them gained nothing end to
        # end on the bench; docs/performance.md).
        with contextlib.closing(batches):
            for batch in batches:
                vectors = [encode(batch.features, spec) for spec in specs]
                with writer_conn.transaction(force_rollback=request.dry_run):
                    for model_bit, (spec, model_vectors) in enumerate(
                            zip(specs, vectors, strict=True)):
                        written = writer.write(batch.windows, model_vectors, spec,
                                               request.window_days, model_bit)
                        total.vectors += written.vectors
                        total.refreshed += written.refreshed
                progress.advance(len(batch.windows) * len(specs))
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
            self.stage(dbt, run_conn, server, summary.run_id)
            relations = Relations.of(dbt, run_conn)
            if relations.vectors and not self.request.dry_run:
                fill_missing(run_conn, relations.embeddings, relations.vectors)
            written = self.encode_and_store(run_conn, relations, summary.run_id)
            summary.vectors, summary.refreshed = written.vectors, written.refreshed
            self.count(run_conn, relations, summary)
            if self.request.dry_run:
                self.forget(run_conn, relations, summary.run_id)
            else:
                if self.request.run_tests:
                    self.test(dbt, run_conn, relations, server, summary)
                self.finish(dbt, server, summary.run_id)
        summary.seconds = time.monotonic() - started
        return summary

    def dbt_vars(self, server: ResolvedServer, run_id: str) -> dict[str, object]:
        # cli_server: dbt refuses a target that is not this server (check_target_server);
        # run_in_flight: the run prunes superseded rows itself when it is done (finish).
        return {**self.request.dbt_vars(run_id), "cli_server": server.identity,
                "run_in_flight": True}

    def stage(self, dbt: DbtRunner, run_conn: psycopg.Connection, server: ResolvedServer,
              run_id: str) -> None:
        Deployment(dbt).stage(run_conn, dbt, self.dbt_vars(server, run_id), run_id)

    def encode_and_store(self, conn: psycopg.Connection, relations: Relations,
                         run_id: str) -> Written:
        windows = conn.execute(sql.SQL(queries.RUN_OK_WINDOWS).format(
            windows=sql.SQL(relations.windows), run_id=sql.Literal(run_id))).fetchone()
        progress = Progress(run_id, int(windows[0] if windows else 0) * len(self.specs))
        stored = encode_and_store(relations, run_id, self.specs, self.request, progress)
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
        if summary.embedded + summary.insufficient_history + summary.already_stored == 0:
            raise PipelineError(self.request.nothing_selected())
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

    def finish(self, dbt: DbtRunner, server: ResolvedServer, run_id: str) -> None:
        """The run is done: its staged rows now supersede older runs' rows of its windows,
        and the change log keeps only what still outdates a vector."""
        dbt.invoke(["run-operation", "prune_finished_run", "--args",
                    json.dumps({"run_id": run_id})], {"cli_server": server.identity})
