{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook=["{{ set_staging_settings() }}", "{{ forget_staged_run() }}"],
        post_hook="{{ analyze_if_stale(staged_run_rows()) }}",
        indexes=[
            {'columns': ['run_id', 'window_seq'], 'unique': true},
            {'columns': ['instrument_id', 'as_of_date']},
        ],
    )
}}
{%- set params = numeric_window_params() -%}
{%- set model_ids = var('model_ids', []) -%}
{%- set model_ids = [model_ids] if model_ids is string else model_ids -%}
{%- set skip_existing_model_ids = var('skip_existing_model_ids', []) -%}
{%- set skip_existing_model_ids = [skip_existing_model_ids] if skip_existing_model_ids is string
    else skip_existing_model_ids -%}

-- SPEC "One window", one row per run, instrument and as-of date: the window is the last
-- window_days valid rows in [as_of_date - lookback_days, as_of_date], given here by its first
-- and last valid_row_number in int_daily_returns_computed (the encoder gathers the values by
-- those numbers; numeric_window_values lists them). Windows are bounded set-based: the valid
-- rows and two markers per window (lookback start, as-of date) are sorted once per
-- instrument, and a running max of valid_row_number at each marker gives the bounds, so a
-- range of dates costs one sort, not a join per window. Rows are keyed by run_id, so
-- concurrent runs never see (or encode) each other's windows.
-- With the var skip_existing_model_ids (the CLI's --skip-existing), a window every one of
-- those models already has a vector for is not bounded at all: it is listed with status
-- 'already_stored', so re-running a finished backfill costs a key lookup per window.
-- depends_on: {{ ref('stg_embeddings__numeric_window_embeddings') }}

with

selected_instruments as (

    select * from {{ ref('int_instruments_selected') }}

),

as_of_dates as (

    select * from {{ ref('int_as_of_dates_selected') }}

),

-- Not materialized: referenced several times, it is read through its indexes instead.
daily_returns as not materialized (

    select * from {{ ref('int_daily_returns_computed') }}

),

prices as not materialized (

    select * from {{ ref('stg_historical_db__prices_daily') }}

),

instruments as (

    select * from {{ ref('stg_historical_db__instruments') }}

),

{% if skip_existing_model_ids %}

embeddings as (

    select * from {{ ref('stg_embeddings__numeric_window_embeddings') }}

),

{% endif %}

{% if params.stage_part_count > 1 %}

instruments_parted as (

    -- The CLI stages a big run in parts, one dbt invocation each, and encodes a part while
    -- the next is staged: part k is the k-th of stage_part_count runs of consecutive
    -- selection ranks, so every part is whole instruments and the encoder reads each part
    -- by rank.
    select
        instrument_id,
        market_id,
        selection_rank,
        (row_number() over (order by selection_rank) - 1) * {{ params.stage_part_count }}
        / count(*) over () as stage_part

    from selected_instruments

),

instruments_to_stage as (

    select
        instrument_id,
        market_id,
        selection_rank

    from instruments_parted
    where stage_part = {{ params.stage_part_index }}

),

{% else %}

instruments_to_stage as (

    select * from selected_instruments

),

{% endif %}

as_of_positions as (

    -- window_seq = (selection_rank - 1) * date_count + date_position: the window's place in
    -- the run by selection rank, then as-of date, without sorting the run (and the same in
    -- every part).
    select
        as_of_date,
        row_number() over (order by as_of_date) as date_position,
        count(*) over () as date_count

    from as_of_dates

),

window_requests as (

    select
        {{ sql_text(params.run_id) }} as run_id,
        instruments_to_stage.instrument_id,
        instruments_to_stage.market_id,
        instruments_to_stage.selection_rank,
        as_of_dates.as_of_date,
        {{ params.window_days }} as window_days,
        {{ params.lookback_days }} as lookback_days,
        {{ params.min_rows }} as min_rows,
        as_of_dates.as_of_date - {{ params.lookback_days }} as lookback_start_date

    from instruments_to_stage
    cross join as_of_dates

),

{% if skip_existing_model_ids %}

stored_keys as (

    -- The keys those models already have, for the selected instruments over the run's
    -- as-of dates: one range of the embeddings' unique key per instrument, so the cost
    -- follows the run, not the table, and is merged with the requests in one join (a
    -- probe per request cost 4 us each, 1.5 s for a 3-year daily range).
    select
        embeddings.entity_id as instrument_id,
        embeddings.as_of_date,
        count(*) as model_count

    from instruments_to_stage
    inner join embeddings
        on embeddings.entity_type = 'INSTRUMENT'
        and embeddings.entity_id = instruments_to_stage.instrument_id
        and embeddings.as_of_date between (select min(as_of_date) from as_of_dates)
        and (select max(as_of_date) from as_of_dates)
        and embeddings.model_id in ({{ sql_text_list(skip_existing_model_ids) }})
    group by embeddings.entity_id, embeddings.as_of_date

),

{% endif %}

requests_marked as (

    {% if skip_existing_model_ids %}

    -- A request is stored when every one of those models has its key.
    select
        window_requests.*,
        coalesce(stored_keys.model_count, 0)
        = {{ skip_existing_model_ids | unique | list | length }} as is_stored

    from window_requests
    left join stored_keys
        on stored_keys.instrument_id = window_requests.instrument_id
        and stored_keys.as_of_date = window_requests.as_of_date

    {% else %}

    select
        window_requests.*,
        false as is_stored

    from window_requests

    {% endif %}

),

requests_to_stage as (

    select * from requests_marked
    where not is_stored

),

stored_requests as (

    select * from requests_marked
    where is_stored

),

request_spans as (

    -- Per instrument, the days its windows to stage can reach: only those rows are sorted
    -- (a --skip-existing run that finds most windows stored reads few instruments' rows).
    select
        instrument_id,
        min(lookback_start_date) as first_date,
        max(as_of_date) as last_date

    from requests_to_stage
    group by instrument_id

),

request_span as (

    select
        min(first_date) as first_date,
        max(last_date) as last_date

    from request_spans

),

returns_in_span as (

    -- lagged_date: the date of the valid row window_days - 1 rows back (the first row of a
    -- full window ending here), NULL when that row is before the span; next_date: the date
    -- of the next valid row.
    select
        daily_returns.instrument_id,
        daily_returns.trade_date,
        daily_returns.valid_row_number,
        lag(daily_returns.trade_date, {{ params.window_days - 1 }}) over by_row as lagged_date,
        lead(daily_returns.trade_date) over by_row as next_date

    from request_spans
    inner join daily_returns
        on daily_returns.instrument_id = request_spans.instrument_id
        and daily_returns.trade_date between request_spans.first_date and request_spans.last_date
    window by_row as (partition by daily_returns.instrument_id order by daily_returns.trade_date)

),

first_rows_in_span as (

    select
        instrument_id,
        min(trade_date) as first_trade_date

    from returns_in_span
    group by instrument_id

),

rows_before_span as (

    -- The last valid row before the span (one index probe per instrument), so a marker
    -- with no row in the span before it still knows how many valid rows precede it, and
    -- the instrument's first row in the span (what follows a lookback start with no valid
    -- row before it). Every selected instrument gets this row, even without history.
    select
        request_spans.instrument_id,
        request_spans.first_date,
        last_before.valid_row_number,
        last_before.trade_date,
        first_rows_in_span.first_trade_date as next_date

    from request_spans
    left join lateral (
        select
            daily_returns.valid_row_number,
            daily_returns.trade_date
        from daily_returns
        where daily_returns.instrument_id = request_spans.instrument_id
            and daily_returns.trade_date < request_spans.first_date
        order by daily_returns.trade_date desc
        limit 1
    ) as last_before on true
    left join first_rows_in_span
        on first_rows_in_span.instrument_id = request_spans.instrument_id

),

rejected_in_span as (

    -- An index probe of the prices' key per instrument over its span. As a join, PostgreSQL
    -- cannot tell how short each span is and scans every price row; offset 0 keeps the
    -- lateral subquery a probe.
    select
        request_spans.instrument_id,
        rejected.trade_date

    from request_spans
    cross join lateral (
        select prices.trade_date
        from prices
        where prices.instrument_id = request_spans.instrument_id
            and prices.trade_date between request_spans.first_date and request_spans.last_date
            and not prices.is_valid
        offset 0
    ) as rejected

),

events as (

    -- event_order puts a lookback marker (0) before the rows of its day and an as-of
    -- marker (2) after them: the lookback start and the as-of date are both inclusive.
    select
        rows_before_span.instrument_id,
        rows_before_span.first_date - 1 as event_date,
        1 as event_order,
        rows_before_span.valid_row_number,
        0 as rejected_rows,
        null::date as as_of_date,
        rows_before_span.trade_date as row_date,
        null::date as lagged_date,
        rows_before_span.next_date,
        null::text as market_id,
        null::bigint as selection_rank
    from rows_before_span

    union all

    select
        instrument_id,
        trade_date as event_date,
        1 as event_order,
        valid_row_number,
        0 as rejected_rows,
        null::date as as_of_date,
        trade_date as row_date,
        lagged_date,
        next_date,
        null::text as market_id,
        null::bigint as selection_rank
    from returns_in_span

    union all

    select
        instrument_id,
        trade_date as event_date,
        1 as event_order,
        null::bigint as valid_row_number,
        1 as rejected_rows,
        null::date as as_of_date,
        null::date as row_date,
        null::date as lagged_date,
        null::date as next_date,
        null::text as market_id,
        null::bigint as selection_rank
    from rejected_in_span

    union all

    select
        instrument_id,
        lookback_start_date as event_date,
        0 as event_order,
        null::bigint as valid_row_number,
        0 as rejected_rows,
        as_of_date,
        null::date as row_date,
        null::date as lagged_date,
        null::date as next_date,
        null::text as market_id,
        null::bigint as selection_rank
    from requests_to_stage

    union all

    select
        instrument_id,
        as_of_date as event_date,
        2 as event_order,
        null::bigint as valid_row_number,
        0 as rejected_rows,
        as_of_date,
        null::date as row_date,
        null::date as lagged_date,
        null::date as next_date,
        market_id,
        selection_rank
    from requests_to_stage

),

running_counts as (

    -- Dates only grow with valid_row_number, so a running max at a marker is the value of
    -- the last valid row before it (max ignores the markers' NULLs).
    select
        instrument_id,
        as_of_date,
        event_order,
        market_id,
        selection_rank,
        coalesce(max(valid_row_number) over by_event, 0) as valid_rows_so_far,
        sum(rejected_rows) over by_event as rejected_rows_so_far,
        max(row_date) over by_event as last_row_date,
        max(lagged_date) over by_event as last_lagged_date,
        max(next_date) over by_event as last_next_date

    from events
    window by_event as (
        partition by instrument_id
        order by event_date, event_order
        rows between unbounded preceding and current row
    )

),

window_bounds as (

    -- At the as-of marker: the last row (number, date) and the first row of a full window
    -- ending there; at the lookback marker: the rows before the lookback and the first row
    -- after them. The as-of marker carries the request's instrument columns, so no join
    -- back to the requests is needed (an underestimated join there once made PostgreSQL
    -- re-run this whole sort once per window).
    select
        instrument_id,
        as_of_date,
        max(market_id) filter (where event_order = 2) as market_id,
        max(selection_rank) filter (where event_order = 2) as selection_rank,
        max(valid_rows_so_far) filter (where event_order = 2) as last_row_number,
        max(valid_rows_so_far) filter (where event_order = 0) as rows_before_lookback,
        max(rejected_rows_so_far) filter (where event_order = 2)
        - max(rejected_rows_so_far) filter (where event_order = 0) as rows_rejected,
        max(last_row_date) filter (where event_order = 2) as last_row_date,
        max(last_lagged_date) filter (where event_order = 2) as full_window_start_date,
        max(last_next_date) filter (where event_order = 0) as lookback_start_row_date

    from running_counts
    where event_order <> 1
    group by instrument_id, as_of_date

),

windows_counted as (

    select
        {{ sql_text(params.run_id) }} as run_id,
        instrument_id,
        market_id,
        selection_rank,
        as_of_date,
        {{ params.window_days }} as window_days,
        {{ params.lookback_days }} as lookback_days,
        {{ params.min_rows }} as min_rows,
        last_row_number,
        rows_rejected,
        last_row_date,
        full_window_start_date,
        lookback_start_row_date,
        least(
            {{ params.window_days }},
            last_row_number - rows_before_lookback
        ) as rows_observed

    from window_bounds

),

windows_dated as (

    -- The first observed row is the later of the first row of a full window and the first
    -- row after the lookback start (NULL full_window_start_date: that row is before the
    -- span, so the lookback bounds the window).
    select
        windows_counted.*,
        windows_counted.last_row_number - windows_counted.rows_observed + 1
            as first_row_number,
        case
            when windows_counted.rows_observed > 0
                then greatest(
                        windows_counted.full_window_start_date,
                        windows_counted.lookback_start_row_date
                    )
        end as start_date,
        case
            when windows_counted.rows_observed > 0 then windows_counted.last_row_date
        end as end_date

    from windows_counted

),

selected_markets as materialized (

    -- Materialized: the calendar below is computed once per market, not per day.
    select distinct market_id
    from selected_instruments
    where market_id is not null

),

market_trading_days as (

    -- The days each selected market traded in the span: one of its instruments has a row.
    select
        selected_markets.market_id,
        market_days.trade_date

    from selected_markets
    cross join lateral {{ trading_days(ref('int_daily_returns_computed'),
        'select instrument_id from instruments
        where instruments.market_id = selected_markets.market_id',
        '(select first_date from request_span)', '(select last_date from request_span)') }}
        as market_days

),

market_days_numbered as (

    -- day_number: the market's trading days in the span up to and including trade_date.
    select
        market_id,
        trade_date,
        row_number() over (partition by market_id order by trade_date) as day_number

    from market_trading_days

),

as_of_days_numbered as (

    select
        market_days_numbered.market_id,
        as_of_dates.as_of_date,
        count(*) as day_number

    from market_days_numbered
    inner join as_of_dates
        on market_days_numbered.trade_date <= as_of_dates.as_of_date
    group by market_days_numbered.market_id, as_of_dates.as_of_date

),

windows_measured as (

    select
        windows_dated.*,
        as_of_days_numbered.day_number - end_days.day_number as trading_days_after_end,
        windows_dated.rows_observed >= windows_dated.min_rows as is_ok

    from windows_dated
    left join market_days_numbered as end_days
        on end_days.market_id = windows_dated.market_id
        and end_days.trade_date = windows_dated.end_date
    left join as_of_days_numbered
        on as_of_days_numbered.market_id = windows_dated.market_id
        and as_of_days_numbered.as_of_date = windows_dated.as_of_date

),

staged_windows as (

    select
        run_id,
        instrument_id,
        market_id,
        selection_rank,
        as_of_date,
        window_days,
        lookback_days,
        min_rows,
        rows_observed,
        case when is_ok then window_days - rows_observed end as rows_filled,
        case when rows_observed > 0 then first_row_number end as first_row_number,
        case when rows_observed > 0 then last_row_number end as last_row_number,
        start_date,
        end_date,
        rows_rejected,
        trading_days_after_end,
        coalesce(trading_days_after_end > 5, false) as is_stale,
        case when is_ok then 'ok' else 'insufficient_history' end as window_status

    from windows_measured

),

already_stored_windows as (

    select
        run_id,
        instrument_id,
        market_id,
        selection_rank,
        as_of_date,
        window_days,
        lookback_days,
        min_rows,
        null::bigint as rows_observed,
        null::bigint as rows_filled,
        null::bigint as first_row_number,
        null::bigint as last_row_number,
        null::date as start_date,
        null::date as end_date,
        null::bigint as rows_rejected,
        null::bigint as trading_days_after_end,
        null::boolean as is_stale,
        'already_stored' as window_status

    from stored_requests

),

all_windows as (

    select * from staged_windows

    union all

    select * from already_stored_windows

),

final as (

    select
        all_windows.run_id,
        (
            (all_windows.selection_rank - 1) * as_of_positions.date_count
            + as_of_positions.date_position
        )::bigint as window_seq,
        all_windows.instrument_id,
        all_windows.market_id,
        all_windows.selection_rank::integer as selection_rank,
        all_windows.as_of_date,
        all_windows.window_days,
        all_windows.lookback_days,
        all_windows.min_rows,
        all_windows.rows_observed::integer as rows_observed,
        all_windows.rows_filled::integer as rows_filled,
        all_windows.first_row_number::bigint as first_row_number,
        all_windows.last_row_number::bigint as last_row_number,
        all_windows.start_date,
        all_windows.end_date,
        all_windows.rows_rejected::integer as rows_rejected,
        all_windows.trading_days_after_end::integer as trading_days_after_end,
        all_windows.is_stale,
        all_windows.window_status,
        array[{{ sql_text_list(model_ids) }}]::text[] as model_ids,
        now() as staged_at

    from all_windows
    inner join as_of_positions
        on as_of_positions.as_of_date = all_windows.as_of_date

)

-- In key order: the table's two indexes then grow at their right edge instead of taking
-- rows at random pages (365,500 rows appended in 2.5 s instead of 4.5 s; the sort ~0.2 s).
select * from final
order by window_seq
