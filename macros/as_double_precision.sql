{#
  A source column as double precision, whatever numeric type it has. A numeric column can
  hold finite values beyond double precision's range (1e400), whose cast fails and would
  stop every query of the staging view; such values become +-1e308 instead, far beyond
  float32's range, so the row is rejected for that (close_exceeds_float32, ...) like any
  value float32 cannot hold. NaN and +-Infinity keep their meaning, NULL stays NULL. The
  common case is tested first: two comparisons a row. Other types cast as they are. The
  column's type is read when the view is compiled (PostgreSQL refuses to change it under
  the view afterwards).
#}
{% macro as_double_precision(relation, alias, column_name) -%}
{%- set data_types = [] -%}
{%- if execute -%}
  {%- set data_types = adapter.get_columns_in_relation(relation)
      | selectattr('name', 'equalto', column_name) | map(attribute='dtype') | list -%}
{%- endif -%}
{%- set value = alias ~ '.' ~ column_name -%}
{%- if data_types and data_types[0] | lower in ['numeric', 'decimal'] -%}
case
    when {{ value }} < 1e308 and {{ value }} > -1e308 then {{ value }}::double precision
    when {{ value }} in ('NaN', 'Infinity', '-Infinity') then {{ value }}::double precision
    when {{ value }} >= 1e308 then 1e308::double precision
    when {{ value }} <= -1e308 then -1e308::double precision
end
{%- else -%}
{{ value }}::double precision
{%- endif -%}
{%- endmacro %}
