with

source as (

    select * from {{ source('historical_db', 'instruments') }}

),

renamed as (

    select
        instrument_id::text as instrument_id,
        market_id::text as market_id,
        asset_class::text as asset_class,
        symbol::text as symbol,
        currency::text as currency,
        status::text as instrument_status

    from source

)

select * from renamed
