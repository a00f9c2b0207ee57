{#
  A price column of the source as double precision, by a cast that does not fail (for text:
  on PostgreSQL 16+): a failed cast stops every query that reads the row (a whole `dbt run`,
  rejected_prices, a window over it). Columns of double precision, real or integer type are
  cast as they are. Text (and a domain over it: the catalog names the base type) goes
  through text_as_double; older servers cast text as it is. numeric, and any type the
  catalog does not name (a user-defined type, a materialized view's column), goes through
  clamped_as_double, because numeric holds values no double does. The column's type is
  read when the view is compiled (PostgreSQL refuses to change it under the view).
#}
{% macro as_double_precision(relation, alias, column_name) -%}
{%- set data_types = [] -%}
{%- if execute -%}
  {%- set data_types = adapter.get_columns_in_relation(relation)
      | selectattr('name', 'equalto', column_name) | map(attribute='dtype') | list -%}
{%- endif -%}
{%- set data_type = (data_types[0] if data_types else '') | lower -%}
{%- set value = alias ~ '.' ~ column_name -%}
{%- if not execute or data_type in ['double precision', 'real', 'smallint', 'integer',
                                     'bigint'] -%}
{{ value }}::double precision
{%- elif data_type in ['text', 'character varying', 'character'] -%}
{{ text_as_double(value) }}
{%- else -%}
{{ clamped_as_double(value) }}
{%- endif -%}
{%- endmacro %}


{#
  A numeric value as double precision:
  - beyond +-1e308 (1e400): +-1e308, far beyond float32, so the row is rejected as any
    value float32 cannot hold (close_exceeds_float32), or as not positive (negative);
  - so small that the cast rounds to zero (1e-400: below 2^-1075, to 17 digits): 0 (-0 if
    negative), as the cast would give if it did not fail;
  - NaN, +-Infinity and NULL as they are.
  The common case, a positive price, is tested first: two comparisons a row.
#}
{% macro clamped_as_double(value) -%}
case
    when {{ value }} >= 1e-300 and {{ value }} < 1e308 then {{ value }}::double precision
    when {{ value }} in ('NaN', 'Infinity', '-Infinity') then {{ value }}::double precision
    when {{ value }} >= 1e308 then 1e308::double precision
    when {{ value }} <= -1e308 then -1e308::double precision
    when {{ value }} > -2.4703282292062328e-324 and {{ value }} < 2.4703282292062328e-324
        then case when {{ value }} < 0 then '-0'::double precision else 0::double precision end
    else {{ value }}::double precision
end
{%- endmacro %}


{#
  A text value as double precision (PostgreSQL 16+: pg_input_is_valid): what the cast reads,
  as it reads it; a number beyond a double that numeric holds ('1e400') as clamped_as_double
  reads it; any other text ('N/A', '', a number beyond numeric too) as NaN, so its row is
  rejected as not a number (close_nan, volume_nan); NULL as NULL. On an older server, the
  cast as it is.
#}
{% macro text_as_double(value) -%}
{%- set version = run_query("select current_setting('server_version_num')::integer") -%}
{%- if version.columns[0].values()[0] < 160000 -%}
{{ value }}::double precision
{%- else -%}
case
    when pg_input_is_valid({{ value }}, 'double precision') then {{ value }}::double precision
    when pg_input_is_valid({{ value }}, 'numeric') then {{ clamped_as_double(
        '(' ~ value ~ ')::numeric') | indent(4) }}
    when {{ value }} is not null then 'NaN'::double precision
end
{%- endif -%}
{%- endmacro %}
