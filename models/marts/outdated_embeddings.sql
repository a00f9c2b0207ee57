{{ config(materialized='view') }}

-- The stored vectors known to be outdated (SPEC "Outdated vectors"), one row per vector,
-- with why and when the change that outdated it was found: computed on read from the change
-- log (macros/outdated_keys.sql), so it is current after any run or `dbt run` that updated
-- the daily returns (which records price changes) or the registry seed (model changes).

with

outdated as (

    {{ outdated_keys() }}

),

final as (

    select distinct on (embedding_id)
        model_id,
        instrument_id as entity_id,
        as_of_date,
        window_days,
        reason,
        found_at,
        embedding_id

    from outdated
    where reason is not null
    order by embedding_id asc, found_at asc

)

select * from final
