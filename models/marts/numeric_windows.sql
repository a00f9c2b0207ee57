{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='run_id',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['run_id', 'window_seq'], 'unique': true},
            {'columns': ['instrument_id', 'as_of_date']},
        ],
    )
}}
{%- set params = numeric_window_params() -%}
{%- set model_ids = var('model_ids', []) -%}
{%- set model_ids = [model_ids] if model_ids is string else model_ids -%}

-- SPEC "One window": per selected instrument and as-of date, the last window_days valid rows
-- in [as_of_date - lookback_days, as_of_date], filled at the front to window_days rows by
-- repeating the oldest observed close and volume with log_return 0. Rows are keyed by run_id,
-- so concurrent runs with other vars never see (or encode) each other's windows.

with

selected_instruments as (

    select * from {{ ref('int_instruments_selected') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates_selected') }}

),

daily_returns as (

    select * from {{ ref('int_daily_returns_computed') }}

),

prices as (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

),

window_requests as (

    select
        {{ sql_text(params.run_id) }} as run_id,
        selected_instruments.instrument_id,
        selected_instruments.market_id,
        selected_instruments.selection_rank,
        as_of_dates.as_of_date,
        {{ params.window_days }} as window_days,
        {{ params.lookback_days }} as lookback_days,
        {{ params.min_rows }} as min_rows,
        as_of_dates.as_of_date - {{ params.lookback_days }} as lookback_start_date

    from selected_instruments
    cross join as_of_dates

),

rows_in_lookback as (

    select
        window_requests.instrument_id,
        window_requests.as_of_date,
        daily_returns.trade_date,
        daily_returns.close,
        daily_returns.volume,
        daily_returns.log_return,
        row_number() over (
            partition by window_requests.instrument_id, window_requests.as_of_date
            order by daily_returns.trade_date desc
        ) as rows_back_from_as_of

    from window_requests
    inner join daily_returns
        on daily_returns.instrument_id = window_requests.instrument_id
        and daily_returns.trade_date
        between window_requests.lookback_start_date and window_requests.as_of_date

),

observed_windows as (

    select
        instrument_id,
        as_of_date,
        count(*) as rows_observed,
        min(trade_date) as start_date,
        max(trade_date) as end_date,
        array_agg(close order by trade_date) as observed_closes,
        array_agg(volume order by trade_date) as observed_volumes,
        array_agg(log_return order by trade_date) as observed_log_returns

    from rows_in_lookback
    where rows_back_from_as_of <= {{ params.window_days }}
    group by instrument_id, as_of_date

),

rejected_in_lookback as (

    select
        window_requests.instrument_id,
        window_requests.as_of_date,
        count(*) as rows_rejected

    from window_requests
    inner join prices
        on prices.instrument_id = window_requests.instrument_id
        and prices.trade_date
        between window_requests.lookback_start_date and window_requests.as_of_date
    where not prices.is_valid
    group by window_requests.instrument_id, window_requests.as_of_date

),

market_trading_days as (

    select distinct
        instruments.market_id,
        daily_returns.trade_date

    from daily_returns
    inner join instruments
        on instruments.instrument_id = daily_returns.instrument_id
    where instruments.market_id in (select market_id from window_requests)
        and daily_returns.trade_date
        between (select min(lookback_start_date) from window_requests)
        and (select max(as_of_date) from window_requests)

),

market_days_numbered as (

    -- day_number: the market's trading days up to and including trade_date.
    select
        market_id,
        trade_date,
        row_number() over (partition by market_id order by trade_date) as day_number

    from market_trading_days

),

as_of_days_numbered as (

    select
        market_days_numbered.market_id,
        as_of_dates.as_of_date,
        count(*) as day_number

    from market_days_numbered
    inner join as_of_dates
        on market_days_numbered.trade_date <= as_of_dates.as_of_date
    group by market_days_numbered.market_id, as_of_dates.as_of_date

),

trading_days_after_end as (

    select
        window_requests.instrument_id,
        window_requests.as_of_date,
        as_of_days_numbered.day_number - end_days.day_number as trading_days_after_end

    from window_requests
    inner join observed_windows
        on observed_windows.instrument_id = window_requests.instrument_id
        and observed_windows.as_of_date = window_requests.as_of_date
    inner join market_days_numbered as end_days
        on end_days.market_id = window_requests.market_id
        and end_days.trade_date = observed_windows.end_date
    inner join as_of_days_numbered
        on as_of_days_numbered.market_id = window_requests.market_id
        and as_of_days_numbered.as_of_date = window_requests.as_of_date

),

windows_measured as (

    select
        window_requests.run_id,
        window_requests.instrument_id,
        window_requests.market_id,
        window_requests.selection_rank,
        window_requests.as_of_date,
        window_requests.window_days,
        window_requests.lookback_days,
        window_requests.min_rows,
        coalesce(observed_windows.rows_observed, 0)::integer as rows_observed,
        observed_windows.start_date,
        observed_windows.end_date,
        coalesce(rejected_in_lookback.rows_rejected, 0)::integer as rows_rejected,
        trading_days_after_end.trading_days_after_end::integer as trading_days_after_end,
        observed_windows.observed_closes,
        observed_windows.observed_volumes,
        observed_windows.observed_log_returns,
        coalesce(observed_windows.rows_observed, 0) >= window_requests.min_rows as is_ok

    from window_requests
    left join observed_windows
        on observed_windows.instrument_id = window_requests.instrument_id
        and observed_windows.as_of_date = window_requests.as_of_date
    left join rejected_in_lookback
        on rejected_in_lookback.instrument_id = window_requests.instrument_id
        and rejected_in_lookback.as_of_date = window_requests.as_of_date
    left join trading_days_after_end
        on trading_days_after_end.instrument_id = window_requests.instrument_id
        and trading_days_after_end.as_of_date = window_requests.as_of_date

),

final as (

    select
        run_id,
        row_number() over (order by as_of_date, selection_rank)::bigint as window_seq,
        instrument_id,
        market_id,
        as_of_date,
        window_days,
        lookback_days,
        min_rows,
        rows_observed,
        case when is_ok then window_days - rows_observed end as rows_filled,
        start_date,
        end_date,
        rows_rejected,
        trading_days_after_end,
        coalesce(trading_days_after_end > 5, false) as is_stale,
        case when is_ok then 'ok' else 'insufficient_history' end as window_status,
        array[{{ sql_text_list(model_ids) }}]::text[] as model_ids,
        -- Front fill: the oldest observed row repeated; filled rows have log_return 0.
        case
            when is_ok
                then array_fill(observed_closes[1], array[window_days - rows_observed])
                    || observed_closes
        end as closes,
        case
            when is_ok
                then array_fill(observed_volumes[1], array[window_days - rows_observed])
                    || observed_volumes
        end as volumes,
        case
            when is_ok
                then array_fill(0::double precision, array[window_days - rows_observed])
                    || observed_log_returns
        end as log_returns,
        now() as staged_at

    from windows_measured

)

select * from final
