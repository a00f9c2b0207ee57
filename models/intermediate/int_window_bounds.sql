{%- set params = numeric_window_params() -%}

-- Every request to stage (those --skip-existing found stored are left out), bounded by the
-- window rule (macros/window_bounds.sql), with what an analyst needs to trust it: the
-- rejected price rows inside its lookback, how many of its market's trading days passed
-- after its last row (stale beyond 5), and its status: 'ok' when it has at least min_rows
-- rows (filled at the front up to window_days), else 'insufficient_history'.

with

requests as (

    select * from {{ ref('int_window_requests') }}

),

already_stored as (

    select * from {{ ref('int_windows_already_stored') }}
    where run_id = {{ sql_text(params.run_id) }}

),

prices as (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

market_calendar as (

    select * from {{ ref('int_market_calendar') }}

),

requests_to_stage as (

    select requests.*
    from requests
    left join already_stored
        on already_stored.window_seq = requests.window_seq
    where already_stored.window_seq is null

),

bounded as (

    {{ window_bounds('requests_to_stage') }}

),

-- Materialized: computed once (rejected rows are few), where PostgreSQL would otherwise scan
-- every request's lookback in the prices for them.
rejected_in_span as materialized (

    -- The rejected rows of the selected instruments over every day the run's windows reach.
    select
        prices.instrument_id,
        prices.trade_date

    from prices
    where not prices.is_valid
        and prices.instrument_id in (select requests_to_stage.instrument_id from requests_to_stage)
        and prices.trade_date
        between {{ params.first_as_of }} - {{ params.lookback_days }} and {{ params.last_as_of }}

),

rejected_counts as (

    select
        requests_to_stage.window_seq,
        count(*) as rows_rejected

    from requests_to_stage
    inner join rejected_in_span
        on rejected_in_span.instrument_id = requests_to_stage.instrument_id
        and rejected_in_span.trade_date between requests_to_stage.as_of_date
        - requests_to_stage.lookback_days and requests_to_stage.as_of_date
    group by requests_to_stage.window_seq

),

as_of_day_numbers as (

    -- The number of the market's last trading day on or before each as-of date (which may
    -- be a holiday); a window's last row is never before its lookback, nor is that day.
    select
        market_calendar.market_id,
        as_of_dates.as_of_date,
        max(market_calendar.day_number) as day_number

    from (select distinct as_of_date from requests_to_stage) as as_of_dates
    inner join market_calendar
        on market_calendar.trade_date
        between as_of_dates.as_of_date - {{ params.lookback_days }} and as_of_dates.as_of_date
    group by market_calendar.market_id, as_of_dates.as_of_date

),

final as (

    select
        bounded.run_id,
        bounded.window_seq,
        bounded.instrument_id,
        bounded.market_id,
        bounded.selection_rank,
        bounded.as_of_date,
        bounded.window_days,
        bounded.lookback_days,
        bounded.min_rows,
        bounded.rows_observed::integer as rows_observed,
        case
            when bounded.has_min_rows then bounded.window_days - bounded.rows_observed
        end::integer as rows_filled,
        case when bounded.rows_observed > 0 then bounded.first_row_number end::bigint
            as first_row_number,
        case when bounded.rows_observed > 0 then bounded.last_row_number end::bigint
            as last_row_number,
        case when bounded.rows_observed > 0 then bounded.start_date end as start_date,
        case when bounded.rows_observed > 0 then bounded.end_date end as end_date,
        coalesce(rejected_counts.rows_rejected, 0)::integer as rows_rejected,
        (as_of_day_numbers.day_number - end_day.day_number)::integer as trading_days_after_end,
        coalesce(as_of_day_numbers.day_number - end_day.day_number > 5, false) as is_stale,
        case when bounded.has_min_rows then 'ok' else 'insufficient_history' end
            as window_status

    from bounded
    left join rejected_counts
        on rejected_counts.window_seq = bounded.window_seq
    left join market_calendar as end_day
        on end_day.market_id = bounded.market_id
        and end_day.trade_date = bounded.end_date
    left join as_of_day_numbers
        on as_of_day_numbers.market_id = bounded.market_id
        and as_of_day_numbers.as_of_date = bounded.as_of_date

)

select * from final
