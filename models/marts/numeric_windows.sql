{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ set_staging_settings() }}", "{{ forget_staged_run() }}"],
        post_hook=["{{ analyze_if_stale(staged_run_rows()) }}", "{{ prune_after_dbt_run() }}"],
        indexes=[
            {'columns': ['run_id', 'window_seq'], 'unique': true},
            {'columns': ['instrument_id', 'as_of_date']},
        ],
    )
}}
{%- set model_ids = var('model_ids', []) -%}
{%- set model_ids = [model_ids] if model_ids is string else model_ids -%}

-- The staged windows, one row per run, instrument and as-of date: the bounded windows
-- (int_window_bounds) and the requests --skip-existing found stored ('already_stored').
-- The encoder gathers each 'ok' window's values by its first and last valid_row_number
-- (numeric_window_values lists them). Rows are keyed by run_id, so concurrent runs never
-- read each other's windows; a finished run's rows replace older runs' rows of the same
-- windows (macros/staged_runs.sql), so the table follows the windows, not the runs.

with

requests as (

    select * from {{ ref('int_window_requests') }}

),

already_stored as (

    select * from {{ ref('int_windows_already_stored') }}

),

bounded as (

    select * from {{ ref('int_window_bounds') }}

),

stored_requests as (

    select
        requests.run_id,
        requests.window_seq,
        requests.instrument_id,
        requests.market_id,
        requests.selection_rank,
        requests.as_of_date,
        requests.window_days,
        requests.lookback_days,
        requests.min_rows,
        null::integer as rows_observed,
        null::integer as rows_filled,
        null::bigint as first_row_number,
        null::bigint as last_row_number,
        null::date as start_date,
        null::date as end_date,
        null::integer as rows_rejected,
        null::integer as trading_days_after_end,
        null::boolean as is_stale,
        'already_stored' as window_status

    from requests
    inner join already_stored
        on already_stored.window_seq = requests.window_seq

),

final as (

    select
        staged.*,
        array[{{ sql_text_list(model_ids) }}]::text[] as model_ids,
        now() as staged_at

    from (
        select * from bounded
        union all
        select * from stored_requests
    ) as staged

)

-- In key order: the table's two indexes then grow at their right edge.
select * from final
order by window_seq
