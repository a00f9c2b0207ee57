{#
  The life of a run's rows in numeric_windows. A run stages its windows under its run_id;
  while it is in flight its rows stay whatever else happens (concurrent runs read only their
  own). When it has finished, its rows supersede the rows older runs staged for the same
  windows (instrument_id, as_of_date, window_days), which are deleted, so the table follows
  the windows staged, not the number of runs. A run is in flight while it holds its advisory
  lock (the CLI holds it from staging to its last check; a crashed run holds none); a plain
  `dbt run` finishes with its model's transaction, so its post-hook prunes at once, while
  the CLI asks dbt to prune when it is done (the var run_in_flight defers it).
#}

{#
  Pre-hook of numeric_windows and int_windows_already_stored: a run re-staged under its
  run_id replaces its rows (a delete by the run_id index). A run staged in parts stages
  part 0 first, which forgets the run's rows; its later parts add theirs.
#}
{% macro forget_staged_run() -%}
{%- if is_incremental() and numeric_window_params().stage_part_index == 0 -%}
delete from {{ this }} where run_id = {{ sql_text(numeric_window_params().run_id) }}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}


{#
  SQL counting the windows this run staged (what the numeric_windows post-hook compares with
  the table's size to decide on an ANALYZE).
#}
{% macro staged_run_rows() -%}
select count(*) from {{ this }}
where run_id = {{ sql_text(numeric_window_params().run_id) }}
{%- endmacro %}


{#
  The second key of the advisory lock a run holds while in flight (Python:
  queries.RUN_IN_FLIGHT_LOCK), as pg_locks shows it: objid is an unsigned 32-bit oid, so the
  signed hashtext is masked to match runs_in_flight().
#}
{% macro run_lock_key(run_id_sql) -%}
    (hashtext('run ' || {{ run_id_sql }})::bigint & 4294967295)
{%- endmacro %}


{#
  Deletes what the finished run run_id supersedes: for each window it staged (instrument,
  as_of_date, window_days), a row of a run not in flight goes when a newer row of the same
  window, staged for at least the same model_ids, exists; so each window keeps its latest
  staging per set of models, and what a row says (why a window was skipped, filled, stale)
  stays true for its models. Rows of runs in flight stay.
#}
{% macro prune_superseded_windows(run_id, relation=none) -%}
{%- set windows = relation or ref('numeric_windows') -%}
with

runs_in_flight as (

    {{ runs_in_flight() }}

),

finished_keys as (

    select
        instrument_id,
        as_of_date,
        window_days

    from {{ windows }}
    where run_id = {{ sql_text(run_id) }}

),

finished_rows as (

    -- The rows of those windows that runs not in flight staged, this run's included.
    select
        other.ctid as row_id,
        other.instrument_id,
        other.as_of_date,
        other.window_days,
        other.model_ids,
        other.staged_at,
        other.run_id

    from finished_keys
    inner join {{ windows }} as other
        on other.instrument_id = finished_keys.instrument_id
        and other.as_of_date = finished_keys.as_of_date
        and other.window_days = finished_keys.window_days
    where other.run_id = {{ sql_text(run_id) }}
        or {{ run_lock_key('other.run_id') }} not in (
            select runs_in_flight.lock_key from runs_in_flight
        )

),

superseded as (

    -- A newer staged row of the same window, for at least the same models, by a run not in
    -- flight: found by a probe of the window's index per row, so the cost follows the rows.
    select older.row_id
    from finished_rows as older
    where exists (
        select 1
        from {{ windows }} as newer
        where newer.instrument_id = older.instrument_id
            and newer.as_of_date = older.as_of_date
            and newer.window_days = older.window_days
            and (newer.staged_at, newer.run_id) > (older.staged_at, older.run_id)
            and newer.model_ids @> older.model_ids
            and (
                newer.run_id = {{ sql_text(run_id) }}
                or {{ run_lock_key('newer.run_id') }} not in (
                    select runs_in_flight.lock_key from runs_in_flight
                )
            )
    )

)

delete from {{ windows }}
where ctid in (select superseded.row_id from superseded)
{%- endmacro %}


{# The lock keys of the runs in flight (run_lock_key of their run_id, as pg_locks shows it). #}
{% macro runs_in_flight() -%}
    select objid::bigint as lock_key
    from pg_locks
    where locktype = 'advisory'
        and classid = {{ advisory_lock_namespace() }}
        and objsubid = 2
        and database = (select oid from pg_database where datname = current_database())
{%- endmacro %}


{#
  Deletes the rows of int_windows_already_stored that the finished run run_id listed (they
  describe nothing once its counts and checks are done), and those of runs not in flight
  (crashed ones).
#}
{% macro forget_already_stored(run_id) -%}
delete from {{ ref('int_windows_already_stored') }}
where run_id = {{ sql_text(run_id) }}
    or {{ run_lock_key('run_id') }} not in ({{ runs_in_flight() }})
{%- endmacro %}


{# Post-hook of numeric_windows: a plain `dbt run` finishes here, so it prunes now. #}
{% macro prune_after_dbt_run() -%}
{%- if is_incremental() and not var('run_in_flight', false) -%}
{{ prune_superseded_windows(numeric_window_params().run_id, this) }};
{{ forget_already_stored(numeric_window_params().run_id) }}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}


{#
  `dbt run-operation prune_finished_run --args '{run_id: ...}'`: the CLI, when its run is
  done: the staged rows it supersedes, the keys it found already stored, and the change
  log's entries no vector is outdated by any more (macros/outdated_keys.sql), in one
  transaction.
#}
{% macro prune_finished_run(run_id) -%}
{%- call statement('prune_finished_run', auto_begin=true) -%}
{{ prune_superseded_windows(run_id) }};
{{ forget_already_stored(run_id) }};
{{ prune_resolved_changes() }}
{%- endcall -%}
{%- do adapter.commit() -%}
{%- endmacro %}
