-- The latest stored window of one instrument for one model: dates, rows observed and filled,
-- rejected rows in its lookback, vector size.

with

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

instrument_windows as (

    select
        entity_id as instrument_id,
        model_id,
        as_of_date,
        (window_spec ->> 'start_date')::date as start_date,
        (window_spec ->> 'end_date')::date as end_date,
        (window_spec ->> 'rows_observed')::integer as rows_observed,
        (window_spec ->> 'rows_filled')::integer as rows_filled,
        (window_spec ->> 'rows_rejected')::integer as rows_rejected,
        vector_bytes

    from embeddings
    where entity_type = 'INSTRUMENT'
        and entity_id = 'US_EQ_0011'
        and model_id = 'num-stab-core-v1'

),

final as (

    select *
    from instrument_windows
    order by as_of_date desc
    limit 1

)

select * from final
