{#
  Fails (or, with severity warn, reports) every row matching the condition: for things a user
  must see but that do not stop a run, such as rejected price rows or stale windows.
#}
{% test no_rows_where(model, condition) %}
{% do require_test_argument('no_rows_where', 'condition', condition) %}

select *
from {{ model }}
where {{ condition }}
{% endtest %}
