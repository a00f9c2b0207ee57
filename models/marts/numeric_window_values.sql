{{ config(materialized='view') }}

-- The rows of each staged 'ok' window, oldest first, as the encoder sees them (SPEC "One
-- window"): filled rows repeat the first observed row's close and volume with log_return 0.
-- A view: filter it by run_id and instrument_id (or window_seq) to read one window.
-- Flat (no WITH), like the staging views: PostgreSQL merges it into the query that reads
-- it, so a join to it probes the windows' and the daily returns' indexes.

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

from (

    -- Position row_index of a window: a filled row (the first rows_filled positions)
    -- repeats the first observed row, the rest follow it one valid row at a time.
    select
        windows.run_id,
        windows.window_seq,
        windows.instrument_id,
        windows.as_of_date,
        positions.row_index,
        positions.row_index <= windows.rows_filled as is_filled,
        windows.first_row_number
        + greatest(positions.row_index - windows.rows_filled - 1, 0) as valid_row_number

    from {{ ref('numeric_windows') }} as windows
    cross join lateral generate_series(1, windows.window_days) as positions (row_index)
    where windows.window_status = 'ok'

) as window_positions
inner join {{ ref('int_daily_returns_computed') }} as daily_returns
    on daily_returns.instrument_id = window_positions.instrument_id
    and daily_returns.valid_row_number = window_positions.valid_row_number
