{%- set params = numeric_window_params() -%}

-- The as-of dates of one run: the one given (by default the latest trading day), or the
-- trading days of a range (daily), the last trading day of each week (weekly) or of each
-- month (month-end), from the run's market calendar.
-- depends_on: {{ ref('int_market_calendar') }}

{% if params.start_date -%}

with

market_calendar as (

    select * from {{ ref('int_market_calendar') }}

),

trading_days as (

    select distinct trade_date
    from market_calendar
    where trade_date between {{ sql_date(params.start_date) }} and {{ sql_date(params.end_date) }}

),

final as (

    {% if params.frequency == 'daily' -%}
    select trade_date as as_of_date
    from trading_days
    {%- else -%}
    select max(trade_date) as as_of_date
    from trading_days
    group by date_trunc('{{ "week" if params.frequency == "weekly" else "month" }}', trade_date)
    {%- endif %}

)

{%- else -%}

with

final as (

    select {{ params.first_as_of }} as as_of_date
    where {{ params.first_as_of }} is not null

)

{%- endif %}

select * from final
