{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=[
            "{{ set_staging_settings() }}",
            "{{ lock_daily_returns() }}",
            "{{ forget_changed_daily_returns() }}",
        ],
        post_hook='{{ analyze_if_stale() }}',
        indexes=[
            {'columns': ['instrument_id', 'trade_date'], 'unique': true},
            {'columns': ['instrument_id', 'valid_row_number'], 'unique': true},
            {'columns': ['trade_date', 'instrument_id']},
        ],
    )
}}

-- Log-returns over each instrument's whole valid history (SPEC "Daily features"): a rejected
-- row is skipped, so close_prev is the previous *valid* close however far back.
-- Incremental: only rows after an instrument's last stored trade_date are computed, numbered
-- on from its last valid_row_number, with its last stored close as close_prev. An instrument
-- whose stored history no longer matches the prices was deleted by the pre-hook
-- (macros/daily_returns_state.sql) and is recomputed whole, like a new one.
-- Statistics right after the table is built, before numeric_windows plans its joins on it;
-- later appends are left to autovacuum's analyze.

-- depends_on: {{ ref('stg_historical_db__instruments') }}
with

prices as (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

valid_prices as (

    select
        instrument_id,
        trade_date,
        close,
        volume

    from prices
    where is_valid

),

{% if is_incremental() %}

instruments as (

    -- The instruments to bring up to date: those listed, those the run names (an
    -- instrument may have prices without being listed) and those already computed.
    select instrument_id from {{ ref('stg_historical_db__instruments') }}

    union

    select unnest(array[{{ sql_text_list(parse_text_list_var('instrument_ids')) }}]::text[])

    union

    select distinct instrument_id from {{ this }}

),

stored_ends as (

    -- Each one's last computed row: one probe of the (instrument_id, valid_row_number)
    -- index per instrument, not a scan of the table.
    select
        instruments.instrument_id,
        last_row.trade_date as last_trade_date,
        last_row.close as last_close,
        coalesce(last_row.valid_row_number, 0) as last_row_number

    from instruments
    left join
        lateral (
            select
                computed.trade_date,
                computed.close,
                computed.valid_row_number

            from {{ this }} as computed
            where computed.instrument_id = instruments.instrument_id
            order by computed.valid_row_number desc
            limit 1
        ) as last_row
        on true

),

new_prices as (

    -- The rows after it: one range of the prices' (instrument_id, trade_date) key per
    -- instrument, so a new day reads that day, not years of prices.
    select
        new_rows.*,
        stored_ends.last_close,
        stored_ends.last_row_number

    from stored_ends
    cross join
        lateral (
            select valid_prices.*
            from valid_prices
            where valid_prices.instrument_id = stored_ends.instrument_id
                and valid_prices.trade_date
                > coalesce(stored_ends.last_trade_date, '-infinity'::date)
        ) as new_rows

),

{% else %}

new_prices as (

    select
        valid_prices.*,
        null::double precision as last_close,
        0 as last_row_number

    from valid_prices

),

{% endif %}

with_previous_close as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        coalesce(lag(close) over by_date, last_close) as previous_close,
        last_row_number + row_number() over by_date as valid_row_number

    from new_prices
    window by_date as (partition by instrument_id order by trade_date)

),

final as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        coalesce(ln(close / previous_close), 0)::double precision as log_return,
        valid_row_number::bigint as valid_row_number,
        previous_close,
        -- What a window's inputs fingerprint sums (macros/outdated_keys.sql), and what the
        -- change check compares with the prices (macros/daily_returns_state.sql).
        {{ daily_returns_row_fingerprint('with_previous_close') }} as row_hash

    from with_previous_close

)

select * from final
