{#
  The distinct values of a relation's column, optionally between two SQL expressions, as a
  subquery with that column: a skip scan of an index leading on the column (a recursive
  CTE, one index probe per value), where reading every row would cost what the table
  holds, not what a run needs (PostgreSQL does not plan a distinct this way by itself).
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
