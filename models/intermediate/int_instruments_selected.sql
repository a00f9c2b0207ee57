{%- set params = numeric_window_params() -%}

-- SPEC "Instrument selection": the ACTIVE EQUITY instruments of market_id (of every market
-- when neither market_id nor instrument_ids is given) by instrument_id, paged with
-- offset/limit, then the explicit instrument_ids (whatever their status), de-duplicated,
-- first seen first; with shard vars, this worker's share of them.

with

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

),

market_page as (

    select
        instrument_id,
        market_id

    from instruments
    where asset_class = 'EQUITY'
        and instrument_status = 'ACTIVE'
        {% if params.market_id is not none -%}
        and market_id = {{ sql_text(params.market_id) }}
        {%- elif params.instrument_ids -%}
        and false
        {%- endif %}
    order by instrument_id
    offset {{ params.offset }}
    {% if params.limit is not none -%} limit {{ params.limit }} {%- endif %}

),

market_ranked as (

    select
        instrument_id,
        market_id,
        row_number() over (order by instrument_id) as selection_rank

    from market_page

),

explicit_requested as (

    select
        requested.instrument_id,
        requested.request_order

    from
        unnest(array[{{ sql_text_list(params.instrument_ids) }}]::text[])
        with ordinality as requested (instrument_id, request_order)

),

market_size as (

    select count(*) as market_instruments
    from market_ranked

),

explicit_added as (

    select
        explicit_requested.instrument_id,
        instruments.market_id,
        market_size.market_instruments
        + row_number() over (order by explicit_requested.request_order) as selection_rank

    from explicit_requested
    cross join market_size
    left join instruments
        on instruments.instrument_id = explicit_requested.instrument_id
    left join market_ranked
        on market_ranked.instrument_id = explicit_requested.instrument_id
    where market_ranked.instrument_id is null

),

combined as (

    select * from market_ranked
    union all
    select * from explicit_added

),

final as (

    -- A shard keeps the instruments whose stable hash falls to it, after the selection,
    -- so the union of all shards is the unsharded selection.
    select *
    from combined
    where
        (('x' || left(md5(instrument_id), 8))::bit(32)::bigint & 2147483647)
        % {{ params.shard_count }} = {{ params.shard_index }}

)

select * from final
