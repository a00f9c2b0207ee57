-- A staging view is flat (no WITH): PostgreSQL never merges a view whose query has a WITH
-- clause into the query that reads it (is_simple_subquery in prepjointree.c), so a join or
-- an EXISTS against such a view cannot probe the table's indexes; it reads the whole table.

select
    source.instrument_id::text as instrument_id,
    source.market_id::text as market_id,
    source.asset_class::text as asset_class,
    source.symbol::text as symbol,
    source.currency::text as currency,
    source.status::text as instrument_status

from {{ source('historical_db', 'instruments') }} as source
