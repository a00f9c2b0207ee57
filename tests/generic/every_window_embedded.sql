{#
  Fails every staged window with status 'ok' (or 'already_stored', which a --skip-existing
  run did not encode because it found every vector) that lacks a stored vector for one of
  the model_ids of its run ("every window stored").
#}
{% test every_window_embedded(model, embeddings, status_column='window_status', run_id_expression=none) %}
{% do require_test_argument('every_window_embedded', 'embeddings', embeddings) %}

with

expected as (

    select
        instrument_id,
        as_of_date,
        unnest(model_ids) as model_id

    from {{ model }}
    where {{ status_column }} in ('ok', 'already_stored')
        and {{ run_scope_filter(run_id_expression) }}

),

final as (

    select
        expected.instrument_id,
        expected.as_of_date,
        expected.model_id

    from expected
    where not exists (
        select 1
        from {{ embeddings }} as stored
        where stored.entity_type = 'INSTRUMENT'
            and stored.entity_id = expected.instrument_id
            and stored.as_of_date = expected.as_of_date
            and stored.model_id = expected.model_id
    )

)

select * from final
{% endtest %}
