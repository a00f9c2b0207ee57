{{ config(materialized='view') }}

-- Price rows that never enter a window (SPEC "Daily features" 1), with the reason.

with

prices as (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

),

rejected as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        rejection_reason

    from prices
    where not is_valid

),

final as (

    select
        rejected.instrument_id,
        instruments.market_id,
        rejected.trade_date,
        rejected.close,
        rejected.volume,
        rejected.rejection_reason

    from rejected
    left join instruments
        on instruments.instrument_id = rejected.instrument_id

)

select * from final
