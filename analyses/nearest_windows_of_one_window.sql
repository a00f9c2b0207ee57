-- The five stored windows nearest to US_EQ_0011's window of 2025-01-31 (num-stab-core-v1),
-- by exact cosine distance, with each neighbour's window dates. Needs pgvector
-- (similar_windows raises otherwise). Cosine on the raw (close, volume, log-return) values
-- mostly compares volume profiles: the volumes are orders of magnitude larger than the rest.

with

neighbours as (

    select *
    from {{ embeddings_schema() }}.similar_windows(
            'US_EQ_0011', '2025-01-31'::date, 'num-stab-core-v1', 5
        )

),

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

final as (

    select
        neighbours.entity_id as instrument_id,
        neighbours.as_of_date,
        round(neighbours.distance::numeric, 6) as cosine_distance,
        (embeddings.window_spec ->> 'start_date')::date as start_date,
        (embeddings.window_spec ->> 'end_date')::date as end_date

    from neighbours
    inner join embeddings
        on embeddings.entity_type = 'INSTRUMENT'
        and embeddings.entity_id = neighbours.entity_id
        and embeddings.as_of_date = neighbours.as_of_date
        and embeddings.model_id = 'num-stab-core-v1'
    order by neighbours.distance, neighbours.entity_id, neighbours.as_of_date

)

select * from final
