{#
  SPEC "One window", the rule in one place: a request's window is the last window_days
  valid rows of its instrument in [as_of_date - lookback_days, as_of_date], both ends
  inclusive, oldest first. valid_row_number numbers an instrument's valid rows 1, 2, ...
  without gaps (int_daily_returns_computed), so two probes of the returns' key
  (instrument_id, trade_date) bound it:
    last_row      the last valid row on or before as_of_date (the window's newest row);
    row_before    the last valid row before the lookback starts.
  The valid rows in the lookback are numbered row_before + 1 .. last_row, so the window holds
  least(window_days, last_row - row_before) of them, ending at last_row. A third probe, of
  (instrument_id, valid_row_number), dates the first of them.

  requests: a relation or CTE with instrument_id, as_of_date, window_days, lookback_days
  (and any other columns, passed through). Adds rows_observed, first_row_number,
  last_row_number, start_date and end_date (the row numbers and dates NULL when no row), and
  previous_close (the close the first row's log-return divides by).
#}
{% macro window_bounds(requests) -%}
    {%- set daily_returns = ref('int_daily_returns_computed') -%}
    select
        counted.*,
        counted.last_row_number - counted.rows_observed + 1 as first_row_number,
        first_row.trade_date as start_date,
        first_row.previous_close

    from (

        select
            requests.*,
            last_row.trade_date as end_date,
            last_row.valid_row_number as last_row_number,
            least(
                requests.window_days,
                coalesce(last_row.valid_row_number, 0) - coalesce(row_before.valid_row_number, 0)
            ) as rows_observed

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
        left join lateral (
            select daily_returns.valid_row_number
            from {{ daily_returns }} as daily_returns
            where daily_returns.instrument_id = requests.instrument_id
                and daily_returns.trade_date < requests.as_of_date - requests.lookback_days
            order by daily_returns.trade_date desc
            limit 1
        ) as row_before on true

    ) as counted
    left join {{ daily_returns }} as first_row
        on first_row.instrument_id = counted.instrument_id
        and first_row.valid_row_number = counted.last_row_number - counted.rows_observed + 1
{%- endmacro %}
