{{
    config(
        materialized='table',
        indexes=[{'columns': ['instrument_id', 'trade_date'], 'unique': true}],
    )
}}

-- Log-returns over each instrument's whole valid history (SPEC "Daily features"): a rejected
-- row is skipped, so close_prev is the previous *valid* close however far back.

with

prices as (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

valid_prices as (

    select
        instrument_id,
        trade_date,
        close,
        volume

    from prices
    where is_valid

),

with_previous_close as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        lag(close) over (
            partition by instrument_id
            order by trade_date
        ) as previous_close

    from valid_prices

),

final as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        coalesce(ln(close / previous_close), 0)::double precision as log_return

    from with_previous_close

)

select * from final
