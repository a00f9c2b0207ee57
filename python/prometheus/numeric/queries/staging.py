"""The server's identity, the locks, deployment, and what a run staged and reads."""

from __future__ import annotations

SERVER_IDENTITY = """
select pg_postmaster_start_time()::text || ' port ' || current_setting('port')
    || ' database ' || current_database()
"""

# -- locks (session-level advisory locks; first key: "NWE\0", macros' advisory_lock_namespace)
LOCK_NAMESPACE = 0x4E574500
# Held while a run is in flight: its staged rows are then never pruned (macros/staged_runs.sql
# finds it in pg_locks by the same key).
RUN_IN_FLIGHT_LOCK = "select pg_advisory_lock(%s, hashtext('run ' || %s))"
# Held shared by every run from staging to its end; taken exclusively to (re)deploy the
# project's views and seed, which swaps them under their readers.
STAGING_LOCK = "select pg_advisory_lock{mode}(%s, hashtext('staging'))"
STAGING_UNLOCK = "select pg_advisory_unlock{mode}(%s, hashtext('staging'))"
# Orders the writers that replace stored keys of one model (taken in model order).
MODEL_WRITE_LOCK = "select pg_advisory_xact_lock(%s, hashtext(%s))"

# -- deployment (deployment.py)
CREATE_DEPLOYMENTS = """
create table if not exists {table} (
    deployment_key text primary key,
    deployed_at timestamptz not null default now()
)
"""
DEPLOYMENT_RECORDED = "select 1 from {table} where deployment_key = %s"
RELATIONS_MISSING = """
select count(*) from unnest(%s::text[]) as relation where to_regclass(relation) is null
"""
RELATION_EXISTS = "select to_regclass(%s) is not null"
RECORD_DEPLOYMENT = """
insert into {table} (deployment_key) values (%s)
on conflict (deployment_key) do update set deployed_at = now()
"""

# -- what a run staged (backfill.py)
# The run's windows: those it staged (numeric_windows) and, with --skip-existing, the keys it
# found already stored (int_windows_already_stored: listed, not staged).
RUN_WINDOWS = """
select instrument_id, as_of_date, lookback_days, window_status, rows_filled, is_stale
from {windows}
where run_id = {run_id}
union all
select instrument_id, as_of_date, lookback_days, 'already_stored', null, null
from {already_stored}
where run_id = {run_id}
"""
# ... and the days their lookbacks span (where RUN_REJECTED_ROWS looks).
RUN_COUNTS = """
select
    count(distinct instrument_id),
    count(distinct as_of_date),
    count(*) filter (where window_status = 'ok'),
    count(*) filter (where window_status = 'insufficient_history'),
    count(*) filter (where rows_filled > 0),
    count(*) filter (where is_stale),
    count(*) filter (where window_status = 'already_stored'),
    -- As text: a long window's lookback may start before year 1, which Python has no date for.
    min(as_of_date - lookback_days)::text,
    max(as_of_date)::text
from ({run_windows}) as windows
"""

# Every instrument of a market, whatever its status: an upper bound of what the run selects,
# only to size its parts (stage_parts.py).
MARKET_INSTRUMENTS = "select count(*) from {instruments} where market_id = %s"

RUN_OK_WINDOWS = """
select count(*) from {windows} where run_id = {run_id} and window_status = 'ok'
"""
# The 'ok' windows a run staged after window_seq after_seq, and its last window_seq so far:
# parts land in window_seq order, so each count reads only the new parts' index range.
OK_WINDOWS_SINCE = """
select count(*) filter (where window_status = 'ok'), coalesce(max(window_seq), {after_seq})
from {windows}
where run_id = {run_id} and window_seq > {after_seq}
"""

# The distinct rejected price rows inside the run's lookbacks (a row in several windows of a
# range counts once).
RUN_REJECTED_ROWS = """
select count(*)
from {rejected} as rejected
where rejected.trade_date between {first_day}::date and {last_day}::date
    and exists (
        select 1
        from ({run_windows}) as windows
        where windows.instrument_id = rejected.instrument_id
            and rejected.trade_date
            between windows.as_of_date - windows.lookback_days and windows.as_of_date
    )
"""
# Stored vectors of the run's keys whose window now has too little history: outdated, kept.
RUN_OUTDATED_LEFT = """
select count(*)
from {windows} as windows
inner join {embeddings} as stored
    on stored.entity_type = 'INSTRUMENT'
    and stored.entity_id = windows.instrument_id
    and stored.as_of_date = windows.as_of_date
    and stored.model_id = any(windows.model_ids)
where windows.run_id = {run_id} and windows.window_status = 'insufficient_history'
"""
# A --dry-run leaves no staged row behind.
FORGET_RUN = """
delete from {windows} where run_id = {run_id};
delete from {already_stored} where run_id = {run_id}
"""

# -- reading a run's windows (windows.py): one snapshot, read only, no JIT; every query
# reads the run through its (run_id, window_seq) index: a group of consecutive selection
# ranks is a range of window_seq.
READER_NO_JIT = "set jit = off"
READER_SNAPSHOT = "set transaction isolation level repeatable read, read only"
GROUP_SIZES = """
select
    selection_rank, instrument_id, count(*), min(window_seq), max(window_seq),
    min(as_of_date), max(as_of_date)
from {windows}
where run_id = {run_id} and window_status = 'ok' and selection_rank > {after_rank}
group by selection_rank, instrument_id
order by selection_rank
"""

# Which of the run's models already have a vector for a window: bit i is models[i]. Only
# asked when the group's instruments have any vector of these models in its dates.
ANY_STORED = """
select exists (
    select 1
    from {embeddings} as stored
    where stored.entity_type = 'INSTRUMENT'
        and stored.entity_id = any({instrument_ids})
        and stored.as_of_date between {first_date} and {last_date}
        and stored.model_id = any({models})
)
"""
STORED_MODELS = """
coalesce((
    select bit_or(1::bigint << (array_position({models}::text[], stored.model_id::text) - 1))
    from {embeddings} as stored
    where stored.entity_type = 'INSTRUMENT'
        and stored.entity_id = windows.instrument_id
        and stored.as_of_date = windows.as_of_date
        and stored.model_id = any({models})
), 0)
"""
NONE_STORED = "0::bigint"  # STORED_MODELS when no model has a vector in the group
# BOUNDS and HISTORY return one row: (count, the rows packed back to back in binary send
# form), parsed by packed_rows.read_packed_rows with windows.BOUNDS_ROW and HISTORY_ROW.
BOUNDS = """
select
    count(*),
    string_agg(
        int8send(bounds.window_seq) || int4send(bounds.selection_rank)
        || int8send(bounds.first_row_number) || int4send(bounds.rows_filled)
        || date_send(bounds.as_of_date) || date_send(bounds.start_date)
        || date_send(bounds.end_date) || int4send(bounds.rows_observed)
        || int4send(bounds.min_rows) || int4send(bounds.lookback_days)
        || int4send(bounds.rows_rejected) || int4send(bounds.trading_days_after_end)
        || boolsend(bounds.is_stale) || int8send(bounds.stored_models),
        ''::bytea order by bounds.window_seq
    )
from (
    select
        window_seq, selection_rank, first_row_number, rows_filled,
        as_of_date, start_date, end_date, rows_observed, min_rows, lookback_days,
        rows_rejected,
        coalesce(trading_days_after_end, {no_trading_days}) as trading_days_after_end,
        is_stale,
        {stored_models} as stored_models
    from {windows} as windows
    where run_id = {run_id} and window_status = 'ok'
        and window_seq between {first_seq} and {last_seq}
) as bounds
"""
HISTORY = """
with needed as (
    select
        instrument_id,
        selection_rank,
        min(first_row_number) as first_row_number,
        max(last_row_number) as last_row_number
    from {windows}
    where run_id = {run_id} and window_status = 'ok'
        and window_seq between {first_seq} and {last_seq}
    group by instrument_id, selection_rank
)

select
    count(*),
    string_agg(
        int4send(needed.selection_rank) || int8send(returns.valid_row_number)
        || date_send(returns.trade_date) || float8send(returns.close)
        || float8send(returns.volume) || float8send(returns.log_return)
        || int8send(returns.row_hash)
        || float8send(coalesce(returns.previous_close, 'NaN'::double precision)),
        ''::bytea order by needed.selection_rank, returns.valid_row_number
    )
from needed
inner join {returns} as returns
    on returns.instrument_id = needed.instrument_id
    and returns.valid_row_number
    between needed.first_row_number and needed.last_row_number
"""
