{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ set_staging_settings() }}", "{{ forget_staged_run() }}"],
    )
}}
{%- set params = numeric_window_params() -%}
{%- set model_ids = var('skip_existing_model_ids', []) -%}
{%- set model_ids = [model_ids] if model_ids is string else model_ids | unique | list -%}

-- With the var skip_existing_model_ids (the CLI's --skip-existing), the run's requests that
-- every one of those models already has a current vector for: they are listed here, not
-- bounded nor staged in numeric_windows, so a re-run of a finished backfill costs a key
-- lookup and a narrow row per window. A table, keyed by run_id like numeric_windows: the
-- run's counts and int_window_bounds read the run's rows; a finished run's rows go
-- (macros/staged_runs.sql). A vector is current when its fingerprint names the registry's
-- encoder and dim and outdated_embeddings does not list it; one without a fingerprint is
-- staged, and verified by the encoder. Without the var, none.

with

requests as (

    select * from {{ ref('int_window_requests') }}

),

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

registry as (

    select * from {{ ref('numeric_embedding_models') }}

),

outdated as (

    select * from {{ ref('outdated_embeddings') }}

),

stored_keys as (

    -- One range of the embeddings' unique key per instrument over the run's dates.
    select
        embeddings.embedding_id,
        embeddings.entity_id as instrument_id,
        embeddings.as_of_date,
        embeddings.model_id,
        embeddings.window_spec ->> 'inputs_fingerprint' as fingerprint

    from embeddings
    where embeddings.entity_type = 'INSTRUMENT'
        and embeddings.entity_id in (select requests.instrument_id from requests)
        and embeddings.as_of_date between {{ params.first_as_of }} and {{ params.last_as_of }}
        and embeddings.model_id = any(array[{{ sql_text_list(model_ids) }}]::text[])

),

current_keys as (

    select
        stored_keys.instrument_id,
        stored_keys.as_of_date,
        count(*) as model_count

    from stored_keys
    inner join registry
        on registry.model_id = stored_keys.model_id
    where {{ fingerprint_field('stored_keys.fingerprint', 'encoder') }} = registry.encoder
        and {{ fingerprint_field('stored_keys.fingerprint', 'dim') }} = ({{ vector_dim(
            'registry.encoder', 'registry.dim',
            fingerprint_field('stored_keys.fingerprint', 'window_days') ~ '::integer'
        ) }})::text
        and stored_keys.embedding_id not in (select outdated.embedding_id from outdated)
    group by stored_keys.instrument_id, stored_keys.as_of_date

),

final as (

    select
        requests.run_id,
        requests.window_seq,
        requests.instrument_id,
        requests.as_of_date,
        requests.lookback_days

    from requests
    inner join current_keys
        on current_keys.instrument_id = requests.instrument_id
        and current_keys.as_of_date = requests.as_of_date
    where current_keys.model_count = {{ model_ids | length }}

)

select * from final
