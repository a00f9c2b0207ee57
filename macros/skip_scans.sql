{#
  The distinct values of a relation's column, optionally between two SQL expressions, as a
  subquery with that column: a skip scan of an index leading on the column (a recursive
  CTE, one index probe per value), where reading every row would cost what the table
  holds, not what a run needs. 0.08 s for the 1,485 instrument_ids of 1.25 million rows.
#}
{% macro skip_scan_distinct(relation, column, first_value=none, last_value=none) -%}
    {%- set stop = '< ' ~ last_value if last_value is not none else 'is not null' -%}
    (
        with recursive distinct_values as (
            (
                select first_row.{{ column }} as scanned_value
                from {{ relation }} as first_row
                {% if first_value is not none -%}
                where first_row.{{ column }} >= {{ first_value }}
                {% endif -%}
                order by first_row.{{ column }}
                limit 1
            )
            union all
            select (
                select next_row.{{ column }}
                from {{ relation }} as next_row
                where next_row.{{ column }} > distinct_values.scanned_value
                order by next_row.{{ column }}
                limit 1
            )
            from distinct_values
            where distinct_values.scanned_value {{ stop }}
        )
        select scanned_value as {{ column }}
        from distinct_values
        where scanned_value {{ '<= ' ~ last_value if last_value is not none else 'is not null' }}
    )
{%- endmacro %}


{#
  The days in [first_date, last_date] on which at least one of the instruments that
  instruments_sql lists (a query with an instrument_id column; it may refer to the caller's
  columns) has a daily-returns row: the days with any row by a skip scan of the returns'
  (trade_date) index, then per day a probe of those instruments in turn (usually the first
  has a row). A market's calendar costs one index probe per day, not a read of every row in
  the span. The lateral `limit 1` keeps the probe a probe: as an EXISTS, PostgreSQL may
  plan a semi-join that reads the span's rows.
#}
{% macro trading_days(daily_returns, instruments_sql, first_date, last_date) -%}
    (
        select row_dates.trade_date
        from {{ skip_scan_distinct(daily_returns, 'trade_date', first_date, last_date) }}
            as row_dates
        cross join lateral (
            select 1 as has_row
            from ({{ instruments_sql }}) as calendar_instruments
            inner join {{ daily_returns }} as daily_returns
                on daily_returns.instrument_id = calendar_instruments.instrument_id
            where daily_returns.trade_date = row_dates.trade_date
            limit 1
        ) as traded
    )
{%- endmacro %}
