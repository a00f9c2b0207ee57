-- Coverage of one model over a range of as-of dates: selected, embedded, skipped, filled,
-- stale, rejected rows and vector sizes per date.

with

coverage as (

    select * from {{ ref('embedding_coverage') }}

),

final as (

    select
        as_of_date,
        instruments_selected,
        instruments_embedded,
        instruments_skipped,
        skipped_insufficient_history,
        windows_filled,
        windows_stale,
        rejected_price_rows,
        min_bytes,
        max_bytes

    from coverage
    where model_id = 'num-stab-core-v1'
        and as_of_date between date '2025-01-27' and date '2025-01-31'
    order by as_of_date

)

select * from final
