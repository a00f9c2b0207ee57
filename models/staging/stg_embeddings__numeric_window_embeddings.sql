with

source as (

    select * from {{ source('embeddings', 'numeric_window_embeddings') }}

),

final as (

    select
        embedding_id,
        entity_type,
        entity_id,
        as_of_date,
        model_id,
        window_spec,
        window_spec ->> 'run_id' as run_id,
        vector,
        octet_length(vector) as vector_bytes,
        vector_ref,
        created_at

    from source

)

select * from final
