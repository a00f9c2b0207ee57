{#
  Keeps int_daily_returns_computed incremental without ever mixing stale and fresh rows.

  A new trading day only appends rows: the model numbers them on from the instrument's last
  stored valid_row_number and takes close_prev from its last stored close. An instrument whose
  already-computed history no longer matches the prices (a correction, a late or deleted
  row, a row that turned valid or invalid) is forgotten here, before the model's SQL runs,
  and the model recomputes it whole. "Matches" compares, per instrument, the row count and an
  exact sum of per-row hashes of (trade_date, close, volume) over the valid price rows with
  the same over the stored rows (their row_hash column): no window functions and no writes
  when nothing changed (hash_record_extended: PostgreSQL 14+). A staging run compares only
  the dates it reads, by index probes per instrument; a run without its vars compares every
  row, with two scans and a hash join.
  What changed is kept: before an instrument is forgotten, its earliest changed date goes to
  the change log (source embeddings.numeric_window_embedding_changes), in the same
  transaction, so the vectors it makes outdated can be found later from it
  (macros/outdated_keys.sql), whichever run or `dbt run` saw the change first.
  A change to the model itself is not detected here: the CLI rebuilds the table
  (--full-refresh) when the model's definition changed since it was last deployed.

  Both hooks run inside the model's transaction (readers keep seeing the previous version
  until it commits), and the lock makes concurrent runs (a backfill's shards, an analyst's
  `dbt run`) update the table one after the other instead of appending the same rows twice.
#}

{% macro daily_returns_row_fingerprint(relation_alias) -%}
    hash_record_extended(
        row({{ relation_alias }}.trade_date, {{ relation_alias }}.close, {{ relation_alias }}.volume), 0
    )
{%- endmacro %}


{% macro lock_daily_returns() -%}
    select pg_advisory_xact_lock({{ advisory_lock_namespace() }}, hashtext('daily_returns'))
{%- endmacro %}


{#
  The dates a staging run reads (vars as_of, or start_date and end_date, less the lookback),
  or none for a run without them (a plain `dbt run` of the returns): then every stored row
  is checked.
#}
{% macro daily_returns_read_span() -%}
    {%- set first_date = parse_date_var('as_of') or parse_date_var('start_date') -%}
    {%- set last_date = parse_date_var('as_of') or parse_date_var('end_date') -%}
    {%- if first_date is none or last_date is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set lookback = lookback_days(parse_int_var('window_days', 1, 63)) -%}
    {{ return({
        'first_date': sql_date(first_date) ~ ' - ' ~ lookback,
        'last_date': sql_date(last_date),
    }) }}
{%- endmacro %}


{% macro forget_changed_daily_returns() -%}
{%- if is_incremental() -%}
{%- set span = daily_returns_read_span() -%}
{%- set prices = ref('stg_historical_db__prices_daily') -%}
with

{% if span -%}

instruments as (

    select distinct instrument_id from {{ this }}

),

check_ranges as (

    -- Per instrument, the stored rows this run can read: from the last one before the span
    -- (its close divides the span's first return) through the span's end.
    select
        instruments.instrument_id,
        coalesce(before_span.trade_date, '-infinity'::date) as first_date,
        least(last_row.trade_date, {{ span.last_date }}) as last_date

    from instruments
    cross join lateral (
        select computed.trade_date
        from {{ this }} as computed
        where computed.instrument_id = instruments.instrument_id
        order by computed.trade_date desc
        limit 1
    ) as last_row
    left join lateral (
        select computed.trade_date
        from {{ this }} as computed
        where computed.instrument_id = instruments.instrument_id
            and computed.trade_date < {{ span.first_date }}
        order by computed.trade_date desc
        limit 1
    ) as before_span on true

),

stored_state as (

    select
        check_ranges.instrument_id,
        stored_rows.row_count,
        stored_rows.fingerprint

    from check_ranges
    cross join lateral (
        select
            count(*) as row_count,
            sum(computed.row_hash::numeric) as fingerprint
        from {{ this }} as computed
        where computed.instrument_id = check_ranges.instrument_id
            and computed.trade_date between check_ranges.first_date and check_ranges.last_date
    ) as stored_rows

),

source_state as (

    select
        check_ranges.instrument_id,
        source_rows.row_count,
        source_rows.fingerprint

    from check_ranges
    cross join lateral (
        select
            count(*) as row_count,
            sum({{ daily_returns_row_fingerprint('prices') }}::numeric) as fingerprint
        from {{ prices }} as prices
        where prices.instrument_id = check_ranges.instrument_id
            and prices.trade_date between check_ranges.first_date and check_ranges.last_date
            and prices.is_valid
    ) as source_rows

),

{%- else %}

stored_state as (

    select
        instrument_id,
        max(trade_date) as last_trade_date,
        count(*) as row_count,
        sum(row_hash::numeric) as fingerprint

    from {{ this }}
    group by instrument_id

),

source_state as (

    select
        prices.instrument_id,
        count(*) as row_count,
        sum({{ daily_returns_row_fingerprint('prices') }}::numeric) as fingerprint

    from {{ prices }} as prices
    inner join stored_state
        on stored_state.instrument_id = prices.instrument_id
    where prices.is_valid
        and prices.trade_date <= stored_state.last_trade_date
    group by prices.instrument_id

),

{%- endif %}

changed as (

    select stored_state.instrument_id

    from stored_state
    left join source_state
        on source_state.instrument_id = stored_state.instrument_id
    where source_state.row_count is distinct from stored_state.row_count
        or source_state.fingerprint is distinct from stored_state.fingerprint

),

stored_rows as (

    select
        computed.instrument_id,
        computed.trade_date,
        computed.close,
        computed.volume,
        max(computed.trade_date) over (partition by computed.instrument_id) as last_trade_date

    from {{ this }} as computed
    where computed.instrument_id in (select changed.instrument_id from changed)

),

price_rows as (

    select
        prices.instrument_id,
        prices.trade_date,
        prices.close,
        prices.volume

    from {{ prices }} as prices
    where prices.is_valid
        and prices.instrument_id in (select changed.instrument_id from changed)

),

first_changes as (

    -- The earliest day where the computed rows and the valid prices differ (a changed,
    -- deleted, late, invalidated or re-validated row); days after the last computed one
    -- are new days, not changes.
    select
        coalesce(stored_rows.instrument_id, price_rows.instrument_id) as instrument_id,
        min(coalesce(stored_rows.trade_date, price_rows.trade_date)) as first_changed_date

    from stored_rows
    full outer join price_rows
        on price_rows.instrument_id = stored_rows.instrument_id
        and price_rows.trade_date = stored_rows.trade_date
    where (stored_rows.trade_date is null or price_rows.trade_date is null
        or stored_rows.close <> price_rows.close or stored_rows.volume <> price_rows.volume)
        and coalesce(stored_rows.trade_date, price_rows.trade_date) <= coalesce(
            stored_rows.last_trade_date,
            (select max(last_rows.trade_date) from {{ this }} as last_rows
                where last_rows.instrument_id = price_rows.instrument_id)
        )
    group by coalesce(stored_rows.instrument_id, price_rows.instrument_id)

),

recorded as (

    insert into {{ source('embeddings', 'numeric_window_embedding_changes') }}
        (reason, instrument_id, first_changed_date)
    select
        'prices_changed',
        first_changes.instrument_id,
        first_changes.first_changed_date

    from first_changes
    returning instrument_id

)

delete from {{ this }} as stored
where stored.instrument_id in (select changed.instrument_id from changed)
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}


{# The first key of every advisory lock this project takes (queries.LOCK_NAMESPACE, "NWE\0"). #}
{% macro advisory_lock_namespace() -%}
    1314342144
{%- endmacro %}


{#
  The sorts of a large staging run (a range of many instruments and dates) spill to disk
  under PostgreSQL's default work_mem (4MB); in memory they do not. JIT off: per-instrument
  index probes look costly to the planner, which then spends longer compiling the query
  than running it. Transaction-local: both end with the model.
#}
{% macro set_staging_settings() -%}
    {%- set work_mem = var('staging_work_mem', '256MB') -%}
    {%- if not modules.re.fullmatch('[0-9]+ ?(kB|MB|GB)', work_mem | string) -%}
        {{ exceptions.raise_compiler_error("var 'staging_work_mem' must be a size like 256MB, got '" ~ work_mem ~ "'") }}
    {%- endif -%}
    set local work_mem = '{{ work_mem }}';
    set local jit = off
{%- endmacro %}
