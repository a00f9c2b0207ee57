{{ config(materialized='view') }}

-- The rows of each staged 'ok' window, oldest first, as the encoder sees them (SPEC "One
-- window"): filled rows repeat the first observed row's close and volume with log_return 0.
-- A view: filter it by run_id and instrument_id (or window_seq) to read one window.

with

windows as (

    select * from {{ ref('numeric_windows') }}

),

daily_returns as (

    select * from {{ ref('int_daily_returns_computed') }}

),

window_positions as (

    select
        windows.run_id,
        windows.window_seq,
        windows.instrument_id,
        windows.as_of_date,
        positions.row_index,
        positions.row_index <= windows.rows_filled as is_filled,
        windows.first_row_number
        + greatest(positions.row_index - windows.rows_filled - 1, 0) as valid_row_number

    from windows
    cross join lateral generate_series(1, windows.window_days) as positions (row_index)
    where windows.window_status = 'ok'

),

final as (

    select
        window_positions.run_id,
        window_positions.window_seq,
        window_positions.instrument_id,
        window_positions.as_of_date,
        window_positions.row_index,
        window_positions.is_filled,
        daily_returns.trade_date,
        daily_returns.close,
        daily_returns.volume,
        case when window_positions.is_filled then 0 else daily_returns.log_return end
            as log_return

    from window_positions
    inner join daily_returns
        on daily_returns.instrument_id = window_positions.instrument_id
        and daily_returns.valid_row_number = window_positions.valid_row_number

)

select * from final
