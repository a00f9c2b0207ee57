{#
  SPEC "Outdated vectors": a stored vector is outdated when the window its key would be built
  from now (its window_days, the prices now, the registry now) differs from the one it was
  encoded from. Each vector carries the fingerprint of its inputs in window_spec
  (inputs_fingerprint, written by the encoder, python/prometheus/numeric/fingerprints.py):

      v1/<encoder>/<dim>/<window_days>/<rows>/<previous close>

  <rows> is the sum, wrapped to 64 bits, of the window's rows' row_hash (their trade_date,
  close and volume), in 16 hex digits; <previous close> the bits of the close the first
  row's log-return divides by ('NaN' without one), in 16 hex digits.

  Finding outdated vectors starts from what changed, never from everything stored: the
  candidates are the stored vectors of an instrument on or after its earliest changed date,
  and every vector of a model whose encoder or dim changed (the change log). For each
  candidate the window is bounded again (macros/window_bounds.sql) and fingerprinted, and
  reason says why it is outdated: 'insufficient_history' (too few rows now), 'model_changed'
  (another encoder or dim than the registry now says), 'prices_changed' (other inputs; also
  a candidate stored without a fingerprint, until a run verifies it), NULL when current.
#}

{# SQL of one field ('encoder', 'dim' or 'window_days') of a stored fingerprint, as text. #}
{% macro fingerprint_field(fingerprint, field) -%}
    {%- set positions = {'encoder': 2, 'dim': 3, 'window_days': 4} -%}
    {%- if field not in positions -%}
        {{ exceptions.raise_compiler_error("fingerprint_field: no field '" ~ field ~ "'") }}
    {%- endif -%}
    split_part({{ fingerprint }}, '/', {{ positions[field] }})
{%- endmacro %}


{# SQL of a vector's dimension (registry.ModelSpec.vector_dim): 3 values a row for flatten,
   else the registry's dim. #}
{% macro vector_dim(encoder, registry_dim, window_days) -%}
    case {{ encoder }} when 'flatten' then 3 * ({{ window_days }}) else {{ registry_dim }} end
{%- endmacro %}


{% macro inputs_fingerprint(encoder, dim, window_days, rows_hash_sum, previous_close) -%}
    'v1/' || {{ encoder }} || '/' || {{ dim }} || '/' || {{ window_days }} || '/'
    || lpad(to_hex(((({{ rows_hash_sum }}) % 18446744073709551616 + 18446744073709551616
        + 9223372036854775808) % 18446744073709551616 - 9223372036854775808)::bigint), 16, '0')
    || '/' || encode(float8send(coalesce({{ previous_close }}, 'NaN'::double precision)), 'hex')
{%- endmacro %}


{% macro outdated_keys() -%}
{%- set embeddings = source('embeddings', 'numeric_window_embeddings') -%}
{%- set changes = source('embeddings', 'numeric_window_embedding_changes') -%}
{%- set daily_returns = ref('int_daily_returns_computed') -%}
    with

    candidates as (

        select
            changes.change_id,
            changes.found_at,
            stored.embedding_id,
            stored.entity_id as instrument_id,
            stored.as_of_date,
            stored.model_id,
            stored.window_spec

        from {{ changes }} as changes
        inner join {{ embeddings }} as stored
            on stored.entity_type = 'INSTRUMENT'
            and stored.entity_id = changes.instrument_id
            and stored.as_of_date >= changes.first_changed_date
        where changes.reason = 'prices_changed'

        union all

        select
            changes.change_id,
            changes.found_at,
            stored.embedding_id,
            stored.entity_id as instrument_id,
            stored.as_of_date,
            stored.model_id,
            stored.window_spec

        from {{ changes }} as changes
        inner join {{ embeddings }} as stored
            on stored.model_id = changes.model_id
        where changes.reason = 'model_changed'
            and stored.entity_type = 'INSTRUMENT'

    ),

    requests as (

        select
            candidates.*,
            (candidates.window_spec ->> 'window_days')::integer as window_days,
            {{ lookback_days("(candidates.window_spec ->> 'window_days')::integer") }}
                as lookback_days,
            coalesce((candidates.window_spec ->> 'min_rows')::integer, 1) as min_rows,
            candidates.window_spec ->> 'inputs_fingerprint' as stored_fingerprint,
            coalesce(
                {{ fingerprint_field("candidates.window_spec ->> 'inputs_fingerprint'", 'encoder') }},
                candidates.window_spec ->> 'encoder'
            ) as stored_encoder,
            coalesce(
                {{ fingerprint_field("candidates.window_spec ->> 'inputs_fingerprint'", 'dim') }},
                candidates.window_spec ->> 'dim'
            ) as stored_dim,
            registry.encoder,
            {{ vector_dim(
                'registry.encoder', 'registry.dim',
                "(candidates.window_spec ->> 'window_days')::integer"
            ) }} as dim

        from candidates
        left join {{ ref('numeric_embedding_models') }} as registry
            on registry.model_id = candidates.model_id

    ),

    bounded as (

        {{ window_bounds('requests') }}

    ),

    fingerprinted as (

        select
            bounded.*,
            {{ inputs_fingerprint('bounded.encoder', 'bounded.dim', 'bounded.window_days',
                'window_rows.rows_hash_sum', 'bounded.previous_close') }} as current_fingerprint

        from bounded
        cross join lateral (
            select sum(daily_returns.row_hash::numeric) as rows_hash_sum
            from {{ daily_returns }} as daily_returns
            where daily_returns.instrument_id = bounded.instrument_id
                and daily_returns.valid_row_number
                between bounded.first_row_number and bounded.last_row_number
        ) as window_rows

    )

    select
        change_id,
        found_at,
        embedding_id,
        instrument_id,
        as_of_date,
        model_id,
        window_days,
        case
            when not has_min_rows then 'insufficient_history'
            when encoder is null or stored_encoder <> encoder or stored_dim <> dim::text
                then 'model_changed'
            when (stored_fingerprint is distinct from current_fingerprint) then 'prices_changed'
        end as reason

    from fingerprinted
{%- endmacro %}


{#
  Deletes the change log's entries that no stored vector is outdated by any more (all
  refreshed, or verified current): the CLI, when a run is done (not a --dry-run).
#}
{% macro prune_resolved_changes() -%}
delete from {{ source('embeddings', 'numeric_window_embedding_changes') }}
where change_id not in (
    select outdated.change_id
    from ({{ outdated_keys() }}) as outdated
    where outdated.reason is not null
)
{%- endmacro %}
