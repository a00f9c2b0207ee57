{%- set params = numeric_window_params() -%}

-- The as-of dates of one run: the one given, or the market's trading days in a range
-- (daily), the last trading day of each week (weekly) or of each month (month-end).
-- Trading days come from the valid prices of the selected instruments' markets.

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

{% if params.as_of %}

final as (

    select {{ sql_date(params.as_of) }} as as_of_date

)

{% elif params.start_date %}

selected_markets as (

    select distinct market_id
    from selected_instruments
    where market_id is not null

),

calendar_instruments as materialized (

    select instruments.instrument_id
    from instruments
    inner join selected_markets
        on selected_markets.market_id = instruments.market_id

    union

    select selected_instruments.instrument_id
    from selected_instruments

),

trading_days as (

    -- The days in the range with any valid row (a skip scan of the trade_date index), kept
    -- when one of the calendar's instruments has a row that day: probed one instrument at a
    -- time, usually the first has one. Not a read of every row in the range.
    select row_dates.trade_date

    from {{ skip_scan_distinct(ref('int_daily_returns_computed'), 'trade_date',
        sql_date(params.start_date), sql_date(params.end_date)) }} as row_dates
    cross join lateral (
        select 1 as has_row
        from calendar_instruments
        inner join daily_returns
            on daily_returns.instrument_id = calendar_instruments.instrument_id
        where daily_returns.trade_date = row_dates.trade_date
        limit 1
    ) as traded

),

final as (

    {% if params.frequency == 'daily' %}
    select trade_date as as_of_date
    from trading_days
    {% else %}
    select max(trade_date) as as_of_date
    from trading_days
    group by date_trunc('{{ "week" if params.frequency == "weekly" else "month" }}', trade_date)
    {% endif %}

)

{% else %}

final as (

    select null::date as as_of_date
    where false

)

{% endif %}

select * from final
