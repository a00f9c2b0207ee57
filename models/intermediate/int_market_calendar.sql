{%- set params = numeric_window_params() -%}

-- The trading days of the run's markets: a market trades on a day when one of its
-- instruments has a valid row. Over the days the run's windows can reach (its first as-of
-- date less the lookback, through its last), numbered per market. The as-of dates of a range
-- are picked from it, and a window's staleness counts its days.
-- A selected instrument missing from instruments has no market: its own days count (under a
-- NULL market_id) for the as-of dates, never for staleness.

with

selected_instruments as (

    select * from {{ ref('int_instruments_selected') }}

),

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

),

daily_returns as (

    select * from {{ ref('int_daily_returns_computed') }}

),

selected_markets as (

    select distinct market_id
    from selected_instruments
    where market_id is not null

),

calendar_members as (

    select
        instruments.instrument_id,
        instruments.market_id

    from instruments
    inner join selected_markets
        on selected_markets.market_id = instruments.market_id

    union

    select
        instrument_id,
        market_id

    from selected_instruments
    where market_id is null

),

trading_days as (

    select distinct
        calendar_members.market_id,
        daily_returns.trade_date

    from daily_returns
    inner join calendar_members
        on calendar_members.instrument_id = daily_returns.instrument_id
    where daily_returns.trade_date
        between {{ params.first_as_of }} - {{ params.lookback_days }} and {{ params.last_as_of }}

),

final as (

    select
        market_id,
        trade_date,
        row_number() over (partition by market_id order by trade_date) as day_number

    from trading_days

)

select * from final
