{%- set params = numeric_window_params() -%}

-- The as-of dates of one run: the one given, or the market's trading days in a range
-- (daily), the last trading day of each week (weekly) or of each month (month-end).
-- Trading days come from the valid prices of the selected instruments' markets.
-- depends_on: {{ ref('int_daily_returns_computed') }}

with

selected_instruments as (

    select * from {{ ref('int_instruments_selected') }}

),

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

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

    select trade_date
    from {{ trading_days(ref('int_daily_returns_computed'),
        'select instrument_id from calendar_instruments',
        sql_date(params.start_date), sql_date(params.end_date)) }} as calendar_days

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
