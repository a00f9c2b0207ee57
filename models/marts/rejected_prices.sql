{{ config(materialized='view') }}

-- Price rows that never enter a window (SPEC "Daily features" 1), with the reason.
-- Flat (no WITH), like the staging views: PostgreSQL merges it into the query that reads
-- it, so a filter or join on (instrument_id, trade_date) probes the prices' key.

select
    prices.instrument_id,
    instruments.market_id,
    prices.trade_date,
    prices.close,
    prices.volume,
    prices.rejection_reason

from {{ ref('stg_historical_db__prices_daily') }} as prices
left join {{ ref('stg_historical_db__instruments') }} as instruments
    on instruments.instrument_id = prices.instrument_id
where not prices.is_valid
