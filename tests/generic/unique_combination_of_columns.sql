{#  Fails every combination of the given columns that occurs more than once.  #}
{% test unique_combination_of_columns(model, combination_of_columns) %}
{% if combination_of_columns is string or combination_of_columns | length == 0 %}
  {{ exceptions.raise_compiler_error("unique_combination_of_columns: 'combination_of_columns' must be a non-empty list") }}
{% endif %}

with

grouped as (

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as occurrences

    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}

),

final as (

    select * from grouped
    where occurrences > 1

)

select * from final
{% endtest %}
