{#
  Fails every vector whose byte length is not what its model's encoder produces:
  dim x 4 for pad_to_dim (1536 for the 384-dim models), 3 x window_days x 4 for flatten.
  A model_id missing from the registry fails too: nothing is stored under an unknown model.
#}
{% test vector_length_matches_model(model, column_name, registry, model_id_column='model_id', window_spec_column='window_spec', run_id_expression=none) %}
{% do require_test_argument('vector_length_matches_model', 'registry', registry) %}

with

vectors as (

    select
        {{ model_id_column }} as model_id,
        ({{ window_spec_column }} ->> 'window_days')::integer as window_days,
        octet_length({{ column_name }}) as vector_bytes

    from {{ model }}
    where {{ run_scope_filter(run_id_expression) }}

),

registry as (

    select * from {{ registry }}

),

expected as (

    select
        vectors.model_id,
        vectors.window_days,
        vectors.vector_bytes,
        registry.encoder,
        case
            when registry.encoder in ('pad_to_dim', 'flatten')
                then 4 * {{ vector_dim('registry.encoder', 'registry.dim', 'vectors.window_days') }}
        end as expected_bytes

    from vectors
    left join registry
        on registry.model_id = vectors.model_id

),

final as (

    select *
    from expected
    where expected_bytes is null
        or vector_bytes is distinct from expected_bytes

)

select * from final
{% endtest %}
