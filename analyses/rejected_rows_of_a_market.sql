-- The price rows of one market that never enter a window, with the reason.

with

rejected_prices as (

    select * from {{ ref('rejected_prices') }}

),

final as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        rejection_reason

    from rejected_prices
    where market_id = 'US_EQ'
    order by trade_date, instrument_id

)

select * from final
