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

{#
  dbt wraps the model of every generic test in get_where_subquery. A test configured with
  `where: run_scoped` checks only the rows of the var run_id when one is given (the rows a
  backfill just wrote, through the run_id indexes) and every row otherwise. Overrides dbt's
  macro of the same name; any other `where` behaves as in dbt.
#}
{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where') -%}
  {%- if where == 'run_scoped' -%}
    {%- set where = none if var('run_id', none) is none else run_scope_filter('run_id') -%}
  {%- endif -%}
  {%- if where -%}
    {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') -%}
  {%- else -%}
    {%- do return(relation) -%}
  {%- endif -%}
{%- endmacro %}
