{#
  Tests scoped to one run: when the var run_id is given to `dbt test`, the tests that read
  vectors or staged windows check only that run's rows (the CLI does this after each run);
  a plain `dbt test` checks every row.
#}
{% macro run_scope_filter(run_id_expression) %}
  {%- set run_id = var('run_id', none) -%}
  {%- if run_id_expression is not none and run_id is not none -%}
    {{ run_id_expression }} = {{ sql_text(run_id) }}
  {%- else -%}
    true
  {%- endif -%}
{% endmacro %}

{% macro require_test_argument(test_name, argument_name, value) %}
  {% if value is none or value == '' %}
    {{ exceptions.raise_compiler_error(test_name ~ ": argument '" ~ argument_name ~ "' is required") }}
  {% endif %}
{% endmacro %}
