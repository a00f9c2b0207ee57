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

-- depends_on: {{ ref('int_windows_already_stored') }} (its post-hook prunes that table too)

-- The staged windows, one row per run, instrument and as-of date, bounded by the window rule
-- (int_window_bounds; with --skip-existing, the keys already stored are left out: they are
-- in int_windows_already_stored). The encoder gathers each 'ok' window's values by its first
-- and last valid_row_number (numeric_window_values lists them). Rows are keyed by run_id, so
-- concurrent runs never read each other's windows; a finished run's rows replace older
-- runs' rows of the same windows (macros/staged_runs.sql), so the table follows the windows,
-- not the runs.

with

bounded as (

    select * from {{ ref('int_window_bounds') }}

),

final as (

    select
        bounded.*,
        array[{{ sql_text_list(model_ids) }}]::text[] as model_ids,
        now() as staged_at

    from bounded

)

-- In key order: the table's two indexes then grow at their right edge.
select * from final
order by window_seq
