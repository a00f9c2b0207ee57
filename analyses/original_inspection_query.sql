-- The original workflow's inspection query (SPEC.md "The acceptance query"), on the table
-- the pipeline writes: every num-stab-core-v1 vector is 384 float32 = 1536 bytes.

with

embeddings as (

    select * from {{ source('embeddings', 'numeric_window_embeddings') }}

),

final as (

    select
        entity_type,
        model_id,
        count(*) as n,
        min(octet_length(vector)) as min_bytes,
        max(octet_length(vector)) as max_bytes

    from embeddings
    where model_id = 'num-stab-core-v1'
    group by entity_type, model_id

)

select * from final
