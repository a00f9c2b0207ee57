{%- set params = numeric_window_params() -%}

-- The run's requests: one per selected instrument and as-of date, with the window's
-- parameters. window_seq = (selection_rank - 1) * (the run's number of as-of dates) + the
-- date's position numbers the run by selection rank, then as-of date, without sorting it.
-- A run staged in parts (stage_part_count > 1) requests one part of consecutive selection
-- ranks per dbt invocation, so its parts land in window_seq order.

with

selected_instruments as (

    select * from {{ ref('int_instruments_selected') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates_selected') }}

),

instrument_parts as (

    select
        selected_instruments.*,
        ntile({{ params.stage_part_count }}) over (
            order by selected_instruments.selection_rank
        ) - 1 as stage_part_index

    from selected_instruments

),

as_of_positions as (

    select
        as_of_date,
        row_number() over (order by as_of_date) as date_position,
        count(*) over () as date_count

    from as_of_dates

),

final as (

    select
        {{ sql_text(params.run_id) }} as run_id,
        (
            (instrument_parts.selection_rank - 1) * as_of_positions.date_count
            + as_of_positions.date_position
        )::bigint as window_seq,
        instrument_parts.instrument_id,
        instrument_parts.market_id,
        instrument_parts.selection_rank::integer as selection_rank,
        as_of_positions.as_of_date,
        {{ params.window_days }} as window_days,
        {{ params.lookback_days }} as lookback_days,
        {{ params.min_rows }} as min_rows

    from instrument_parts
    cross join as_of_positions
    where instrument_parts.stage_part_index = {{ params.stage_part_index }}

)

select * from final
