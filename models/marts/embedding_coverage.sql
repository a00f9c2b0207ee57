{{ config(materialized='view') }}

-- Coverage per model_id and as_of_date: which instruments the runs selected, embedded or
-- skipped (and why), with rejected price rows, stale windows and the stored vectors' sizes.
-- Several runs may stage the same instrument, date and model: the latest run wins (latest
-- staged_at, then run_id), so a re-run replaces what an earlier run counted.
-- Staged windows of a plain `dbt run` (no model_ids) count for no model.

with

staged_windows as (

    select * from {{ ref('numeric_windows') }}

),

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

outdated as (

    select * from {{ ref('outdated_embeddings') }}

),

windows_per_model as (

    select
        staged_windows.run_id,
        staged_windows.staged_at,
        staged_windows.instrument_id,
        staged_windows.as_of_date,
        staged_windows.window_status,
        staged_windows.rows_filled,
        staged_windows.rows_rejected,
        staged_windows.is_stale,
        window_models.model_id

    from staged_windows
    cross join lateral unnest(staged_windows.model_ids) as window_models (model_id)

),

latest_windows as (

    select distinct on (model_id, as_of_date, instrument_id)
        model_id,
        as_of_date,
        instrument_id,
        run_id,
        window_status,
        rows_filled,
        rows_rejected,
        is_stale

    from windows_per_model
    order by model_id asc, as_of_date asc, instrument_id asc, staged_at desc, run_id desc

),

instrument_vectors as (

    select
        model_id,
        as_of_date,
        entity_id as instrument_id,
        vector_bytes

    from embeddings
    where entity_type = 'INSTRUMENT'

),

windows_with_vectors as (

    select
        latest_windows.model_id,
        latest_windows.as_of_date,
        latest_windows.run_id,
        latest_windows.window_status,
        latest_windows.rows_filled,
        latest_windows.rows_rejected,
        latest_windows.is_stale,
        instrument_vectors.instrument_id is not null as has_vector

    from latest_windows
    left join instrument_vectors
        on instrument_vectors.model_id = latest_windows.model_id
        and instrument_vectors.as_of_date = latest_windows.as_of_date
        and instrument_vectors.instrument_id = latest_windows.instrument_id

),

window_counts as (

    select
        model_id,
        as_of_date,
        count(distinct run_id) as runs,
        count(*) as instruments_selected,
        count(*) filter (where window_status = 'ok' and has_vector) as instruments_embedded,
        count(*) filter (where window_status <> 'ok') as instruments_skipped,
        count(*) filter (
            where window_status = 'insufficient_history'
        ) as skipped_insufficient_history,
        count(*) filter (where window_status = 'ok' and not has_vector) as windows_missing_vector,
        count(*) filter (where window_status = 'ok' and rows_filled > 0) as windows_filled,
        count(*) filter (where is_stale) as windows_stale,
        coalesce(sum(rows_rejected), 0) as rejected_price_rows

    from windows_with_vectors
    group by model_id, as_of_date

),

vector_counts as (

    select
        model_id,
        as_of_date,
        count(*) as vectors_stored,
        min(vector_bytes) as min_bytes,
        max(vector_bytes) as max_bytes

    from instrument_vectors
    group by model_id, as_of_date

),

outdated_counts as (

    select
        model_id,
        as_of_date,
        count(*) as vectors_outdated

    from outdated
    group by model_id, as_of_date

),

final as (

    select
        coalesce(window_counts.model_id, vector_counts.model_id) as model_id,
        coalesce(window_counts.as_of_date, vector_counts.as_of_date) as as_of_date,
        coalesce(window_counts.runs, 0)::integer as runs,
        coalesce(window_counts.instruments_selected, 0)::integer as instruments_selected,
        coalesce(window_counts.instruments_embedded, 0)::integer as instruments_embedded,
        coalesce(window_counts.instruments_skipped, 0)::integer as instruments_skipped,
        coalesce(
            window_counts.skipped_insufficient_history, 0
        )::integer as skipped_insufficient_history,
        coalesce(window_counts.windows_missing_vector, 0)::integer as windows_missing_vector,
        coalesce(window_counts.windows_filled, 0)::integer as windows_filled,
        coalesce(window_counts.windows_stale, 0)::integer as windows_stale,
        coalesce(window_counts.rejected_price_rows, 0)::integer as rejected_price_rows,
        coalesce(vector_counts.vectors_stored, 0)::integer as vectors_stored,
        coalesce(outdated_counts.vectors_outdated, 0)::integer as vectors_outdated,
        vector_counts.min_bytes,
        vector_counts.max_bytes

    from window_counts
    full outer join vector_counts
        on vector_counts.model_id = window_counts.model_id
        and vector_counts.as_of_date = window_counts.as_of_date
    left join outdated_counts
        on outdated_counts.model_id = coalesce(window_counts.model_id, vector_counts.model_id)
        and outdated_counts.as_of_date
        = coalesce(window_counts.as_of_date, vector_counts.as_of_date)

)

select * from final
