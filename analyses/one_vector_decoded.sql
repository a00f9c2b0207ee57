-- One stored vector decoded with embedding_to_array: its length, the oldest and newest rows
-- of the window (close, volume, log_return), the zero padding, and its cosine similarity to
-- another instrument's vector of the same date and model.

with

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

chosen as (

    select
        entity_id as instrument_id,
        as_of_date,
        model_id,
        (window_spec ->> 'window_days')::integer as window_days,
        vector

    from embeddings
    where entity_type = 'INSTRUMENT'
        and entity_id = 'US_EQ_0011'
        and model_id = 'num-stab-core-v1'
        and as_of_date = date '2025-01-31'

),

compared as (

    select
        entity_id as instrument_id,
        as_of_date,
        model_id,
        vector

    from embeddings
    where entity_type = 'INSTRUMENT'
        and entity_id = 'US_EQ_0001'

),

decoded as (

    select
        chosen.instrument_id,
        chosen.as_of_date,
        chosen.window_days,
        {{ embeddings_schema() }}.embedding_to_array(chosen.vector) as vector_values,
        {{ embeddings_schema() }}.embedding_cosine(
            chosen.vector, compared.vector
        ) as cosine_to_us_eq_0001

    from chosen
    left join compared
        on compared.as_of_date = chosen.as_of_date
        and compared.model_id = chosen.model_id

),

final as (

    select
        instrument_id,
        as_of_date,
        cardinality(vector_values) as dim,
        vector_values[1:3] as oldest_row,
        vector_values[3 * window_days - 2:3 * window_days] as newest_row,
        (
            select count(*)
            from unnest(vector_values[3 * window_days + 1:]) as padding (value)
            where padding.value = 0
        ) as zero_padding,
        cosine_to_us_eq_0001

    from decoded

)

select * from final
