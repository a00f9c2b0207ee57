with

source as (

    select * from {{ source('historical_db', 'prices_daily') }}

),

typed as (

    select
        instrument_id::text as instrument_id,
        trade_date::date as trade_date,
        close::double precision as close,
        volume::double precision as volume

    from source

),

classified as (

    -- NaN sorts above every number in PostgreSQL, so it is caught before the range checks.
    -- A finite double that float32 would round to infinity is rejected too: no stored value
    -- is ever infinite.
    select
        instrument_id,
        trade_date,
        close,
        volume,
        case
            when close is null then 'close_null'
            when close = 'NaN'::double precision then 'close_nan'
            when close in ('Infinity'::double precision, '-Infinity'::double precision)
                then 'close_infinite'
            when close <= 0 then 'close_not_positive'
            when close >= {{ float32_overflow_threshold() }} then 'close_exceeds_float32'
            when volume is null then 'volume_null'
            when volume = 'NaN'::double precision then 'volume_nan'
            when volume in ('Infinity'::double precision, '-Infinity'::double precision)
                then 'volume_infinite'
            when volume < 0 then 'volume_negative'
            when volume >= {{ float32_overflow_threshold() }} then 'volume_exceeds_float32'
        end as rejection_reason

    from typed

),

final as (

    select
        instrument_id,
        trade_date,
        close,
        volume,
        rejection_reason,
        rejection_reason is null as is_valid

    from classified

)

select * from final
