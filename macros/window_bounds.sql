{#
  SPEC "One window", the rule in one place: a request's window is the last window_days
  valid rows of its instrument in [as_of_date - lookback_days, as_of_date], both ends
  inclusive, oldest first. valid_row_number numbers an instrument's valid rows 1, 2, ...
  without gaps (int_daily_returns_computed), so probes of the returns' keys bound it:
    last_row      the last valid row on or before as_of_date (the window's newest row),
                  by (instrument_id, trade_date);
    nth_back      the valid row window_days - 1 rows before it, by (instrument_id,
                  valid_row_number), when it is inside the lookback: the window is then
                  full, its window_days rows are nth_back .. last_row.
  Otherwise (a short history, or gaps) the window holds the valid rows inside the lookback,
  numbered row_before + 1 .. last_row, at most window_days of them, where
    row_before    is the last valid row before the lookback starts, by (instrument_id,
                  trade_date), probed only for a window that is not full (the condition is
                  on the request and nth_back alone, so PostgreSQL checks it first).
  first_row, by (instrument_id, valid_row_number), dates the window's first row.
  has_min_rows: the window holds at least min_rows rows, else it is 'insufficient_history'.

  requests: a relation or CTE with instrument_id, as_of_date, window_days, lookback_days,
  min_rows (and any other columns, passed through). Adds rows_observed, has_min_rows,
  first_row_number, last_row_number, start_date, end_date and previous_close (the close the
  first row's log-return divides by); start_date and previous_close are NULL when the window
  has no row, end_date and last_row_number when the instrument has no valid row by
  as_of_date.
#}
{% macro window_bounds(requests) -%}
    {%- set daily_returns = ref('int_daily_returns_computed') -%}
    select
        requests.*,
        window_rows.rows_observed,
        window_rows.rows_observed >= requests.min_rows as has_min_rows,
        last_row.valid_row_number - window_rows.rows_observed + 1 as first_row_number,
        last_row.valid_row_number as last_row_number,
        first_row.trade_date as start_date,
        last_row.trade_date as end_date,
        first_row.previous_close

    from {{ requests }} as requests
    left join lateral (
        select
            daily_returns.valid_row_number,
            daily_returns.trade_date
        from {{ daily_returns }} as daily_returns
        where daily_returns.instrument_id = requests.instrument_id
            and daily_returns.trade_date <= requests.as_of_date
        order by daily_returns.trade_date desc
        limit 1
    ) as last_row on true
    left join {{ daily_returns }} as nth_back
        on nth_back.instrument_id = requests.instrument_id
        and nth_back.valid_row_number = last_row.valid_row_number - requests.window_days + 1
        and nth_back.trade_date >= requests.as_of_date - requests.lookback_days
    left join lateral (
        select daily_returns.valid_row_number
        from {{ daily_returns }} as daily_returns
        where nth_back.trade_date is null
            and daily_returns.instrument_id = requests.instrument_id
            and daily_returns.trade_date < requests.as_of_date - requests.lookback_days
        order by daily_returns.trade_date desc
        limit 1
    ) as row_before on true
    cross join lateral (
        select
            case
                when nth_back.trade_date is not null then requests.window_days
                else least(
                    requests.window_days,
                    coalesce(last_row.valid_row_number, 0)
                    - coalesce(row_before.valid_row_number, 0)
                )
            end as rows_observed
    ) as window_rows
    left join {{ daily_returns }} as first_row
        on first_row.instrument_id = requests.instrument_id
        and first_row.valid_row_number
        = last_row.valid_row_number - window_rows.rows_observed + 1
        and window_rows.rows_observed > 0
{%- endmacro %}
