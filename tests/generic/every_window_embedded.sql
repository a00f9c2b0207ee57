{#
  Fails every staged 'ok' window that lacks a stored vector for one of the model_ids of its
  run; a window staged without model ids (a plain `dbt run`) fails when its key has no
  vector of any model ("every window stored"). The keys --skip-existing found stored are
  not staged: they were found with their vectors.

  scope 'run': only the rows of the var run_id (the CLI's own run checks, severity error);
  nothing without that var. scope 'all': every staged row, and only without the var run_id
  (a plain `dbt test`, severity warn): windows a `dbt run` staged that wait for the Python
  step, with a log line naming the command that encodes them.
#}
{% test every_window_embedded(model, embeddings, scope='run', status_column='window_status') %}
{% do require_test_argument('every_window_embedded', 'embeddings', embeddings) %}
{% if scope not in ['run', 'all'] %}
  {{ exceptions.raise_compiler_error("every_window_embedded: 'scope' must be 'run' or 'all', got '" ~ scope ~ "'") }}
{% endif %}
{%- set run_id = var('run_id', none) -%}
{%- if scope == 'run' -%}
  {%- set in_scope = 'false' if run_id is none else 'run_id = ' ~ sql_text(run_id) -%}
{%- else -%}
  {%- set in_scope = 'true' if run_id is none else 'false' -%}
{%- endif -%}

{%- set failing_sql -%}
with

expected as (

    select
        instrument_id,
        market_id,
        as_of_date,
        window_days,
        unnest(case when cardinality(model_ids) = 0 then array[null] else model_ids end)
            as model_id

    from {{ model }}
    where {{ status_column }} = 'ok'
        and {{ in_scope }}

),

final as (

    select *
    from expected
    where not exists (
        select 1
        from {{ embeddings }} as stored
        where stored.entity_type = 'INSTRUMENT'
            and stored.entity_id = expected.instrument_id
            and stored.as_of_date = expected.as_of_date
            and (stored.model_id = expected.model_id or expected.model_id is null)
    )

)

select * from final
{%- endset -%}

{%- if scope == 'all' and run_id is none and execute and flags.WHICH in ['test', 'build'] -%}
  {%- set waiting = run_query(
      'select count(*), min(as_of_date)::text, max(as_of_date)::text, min(window_days),'
      ~ ' min(market_id), count(distinct market_id), min(model_id) from (' ~ failing_sql ~ ') as waiting') -%}
  {%- set row = waiting.rows[0] -%}
  {%- if row[0] > 0 -%}
    {%- set dates = '--as-of ' ~ row[1] if row[1] == row[2]
        else '--start-date ' ~ row[1] ~ ' --end-date ' ~ row[2] -%}
    {%- set market = '--market-id ' ~ row[4] if row[5] == 1 else '--market-id <market>' -%}
    {%- set model_flag = ' --model-id ' ~ row[6] if row[6] else ' --model-id <model>' -%}
    {% do log(row[0] ~ " staged windows wait for the Python step; encode them with: python -m "
        ~ "prometheus.scripts.backfill_numeric_embeddings " ~ dates ~ " --window-days "
        ~ row[3] ~ " " ~ market ~ model_flag, info=True) %}
  {%- endif -%}
{%- endif -%}

{{ failing_sql }}
{% endtest %}
