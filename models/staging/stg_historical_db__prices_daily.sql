-- Flat on purpose, like every staging view (see stg_historical_db__instruments): FROM
-- subqueries instead of CTEs, so PostgreSQL merges this view into the query reading it and
-- a join on (instrument_id, trade_date) probes the table's key.
{%- set prices = source('historical_db', 'prices_daily') %}

select
    classified.instrument_id,
    classified.trade_date,
    classified.close,
    classified.volume,
    classified.rejection_reason,
    -- The same test as "no rejection_reason", written as range checks on the columns so
    -- PostgreSQL estimates it from their statistics (NaN sorts above every number, NULL
    -- fails every comparison); an estimate of "case ... is null" is a blind guess of 0.5%.
    (
        classified.close > 0
        and classified.close < {{ float32_overflow_threshold() }}
        and classified.volume >= 0
        and classified.volume < {{ float32_overflow_threshold() }}
    ) is true as is_valid

from (

    -- NaN sorts above every number in PostgreSQL, so it is caught before the range checks.
    -- A finite double that float32 would round to infinity is rejected too: no stored value
    -- is ever infinite.
    select
        typed.instrument_id,
        typed.trade_date,
        typed.close,
        typed.volume,
        case
            when typed.close is null then 'close_null'
            when typed.close = 'NaN'::double precision then 'close_nan'
            when typed.close in ('Infinity'::double precision, '-Infinity'::double precision)
                then 'close_infinite'
            when typed.close <= 0 then 'close_not_positive'
            when typed.close >= {{ float32_overflow_threshold() }} then 'close_exceeds_float32'
            when typed.volume is null then 'volume_null'
            when typed.volume = 'NaN'::double precision then 'volume_nan'
            when typed.volume in ('Infinity'::double precision, '-Infinity'::double precision)
                then 'volume_infinite'
            when typed.volume < 0 then 'volume_negative'
            when typed.volume >= {{ float32_overflow_threshold() }} then 'volume_exceeds_float32'
        end as rejection_reason

    from (

        select
            source.instrument_id::text as instrument_id,
            source.trade_date::date as trade_date,
            {{ as_double_precision(prices, 'source', 'close') }} as close,
            {{ as_double_precision(prices, 'source', 'volume') }} as volume

        from {{ prices }} as source

    ) as typed

) as classified
