-- Flat on purpose, like every staging view (see stg_historical_db__instruments): the run's
-- checks probe this view by its unique key, which a view with a WITH clause would hide.

select
    source.embedding_id,
    source.entity_type,
    source.entity_id,
    source.as_of_date,
    source.model_id,
    source.window_spec,
    source.window_spec ->> 'run_id' as run_id,
    source.vector,
    octet_length(source.vector) as vector_bytes,
    source.vector_ref,
    source.created_at

from {{ source('embeddings', 'numeric_window_embeddings') }} as source
