{#
  A price column of the source as double precision. Columns of double precision, real,
  integer or text type are cast as they are. Any other type (numeric, a domain, a type the
  catalog does not name, as for a materialized view) goes through a CASE, because numeric
  holds values whose cast fails, and a failed cast stops every query that reads the row (a
  whole `dbt run`, rejected_prices, a window over it):
  - beyond +-1e308 (1e400): +-1e308, far beyond float32, so the row is rejected as any
    value float32 cannot hold (close_exceeds_float32), or as not positive (negative);
  - so small that the cast rounds to zero (1e-400: below 2^-1075, to 17 digits): 0, as the
    cast would give if it did not fail;
  - NaN, +-Infinity and NULL as they are.
  The common case, a positive price, is tested first: two comparisons a row. The column's
  type is read when the view is compiled (PostgreSQL refuses to change it under the view).
#}
{% macro as_double_precision(relation, alias, column_name) -%}
{%- set data_types = [] -%}
{%- if execute -%}
  {%- set data_types = adapter.get_columns_in_relation(relation)
      | selectattr('name', 'equalto', column_name) | map(attribute='dtype') | list -%}
{%- endif -%}
{%- set castable = ['double precision', 'real', 'smallint', 'integer', 'bigint', 'text',
                    'character varying', 'character'] -%}
{%- set value = alias ~ '.' ~ column_name -%}
{%- if not execute or (data_types and data_types[0] | lower in castable) -%}
{{ value }}::double precision
{%- else -%}
case
    when {{ value }} >= 1e-300 and {{ value }} < 1e308 then {{ value }}::double precision
    when {{ value }} in ('NaN', 'Infinity', '-Infinity') then {{ value }}::double precision
    when {{ value }} >= 1e308 then 1e308::double precision
    when {{ value }} <= -1e308 then -1e308::double precision
    when {{ value }} > -2.4703282292062328e-324 and {{ value }} < 2.4703282292062328e-324
        then 0::double precision
    else {{ value }}::double precision
end
{%- endif -%}
{%- endmacro %}
