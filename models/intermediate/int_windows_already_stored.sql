{%- set params = numeric_window_params() -%}
{%- set model_ids = var('skip_existing_model_ids', []) -%}
{%- set model_ids = [model_ids] if model_ids is string else model_ids | unique | list -%}

-- With the var skip_existing_model_ids (the CLI's --skip-existing), the run's requests that
-- every one of those models already has a vector for: they are listed, not bounded, so a
-- re-run of a finished backfill costs a key lookup per window. Without it, none.

with

requests as (

    select * from {{ ref('int_window_requests') }}

),

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

stored_keys as (

    -- One range of the embeddings' unique key per instrument over the run's dates.
    select
        embeddings.entity_id as instrument_id,
        embeddings.as_of_date,
        count(*) as model_count

    from embeddings
    where embeddings.entity_type = 'INSTRUMENT'
        and embeddings.entity_id in (select requests.instrument_id from requests)
        and embeddings.as_of_date between {{ params.first_as_of }} and {{ params.last_as_of }}
        and embeddings.model_id = any(array[{{ sql_text_list(model_ids) }}]::text[])
    group by embeddings.entity_id, embeddings.as_of_date

),

final as (

    select requests.window_seq

    from requests
    inner join stored_keys
        on stored_keys.instrument_id = requests.instrument_id
        and stored_keys.as_of_date = requests.as_of_date
    where stored_keys.model_count = {{ model_ids | length }}

)

select * from final
