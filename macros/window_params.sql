{#
  The vars of one staging run, checked once and returned as a dict. A bad var stops the run
  with a message naming it. With no vars at all, `dbt run` stages the latest trading day for
  every ACTIVE EQUITY instrument; vars narrow it.

  as_of             one as-of date (YYYY-MM-DD); default: the latest trading day of the
                    daily returns (a `dbt run` or `dbt build` without dates)
  start_date, end_date, frequency   a range of as-of dates: daily | weekly | month-end
  window_days       rows per window (default 63, at most 500000)
  min_days          fewest observed rows for a window (default floor(0.87 * window_days))
  market_id         market whose ACTIVE EQUITY instruments are selected (default: every
                    market, unless instrument_ids alone are given)
  limit, offset     page through those instruments by instrument_id
  instrument_ids    explicit instruments, added whatever their status
  shard_index, shard_count   keep the selected instruments whose stable hash (md5 of
                    instrument_id) mod shard_count is shard_index: N workers, one backfill
  stage_part_index, stage_part_count   stage one of stage_part_count parts of consecutive
                    selection ranks (the CLI stages a big range in parts, part 0 first)
  run_id            key of the staged rows (default: dbt's invocation_id)

  Read elsewhere, and set by the CLI rather than by hand:
  model_ids         the models a run stages for (numeric_windows.model_ids)
  skip_existing_model_ids   --skip-existing: list the keys these models have current
                    (int_windows_already_stored)
  run_in_flight     the run prunes superseded rows itself when done (macros/staged_runs.sql)
  cli_server        the CLI's server: dbt refuses another (macros/check_target_server.sql)
  dry_run           a --dry-run: the pgvector hook changes nothing (create_window_vectors)
  Settings: staging_work_mem (default 256MB; set_staging_settings in
  macros/daily_returns_state.sql); source_schema and embeddings_schema, the sources' schemas
  (models/staging/_staging__sources.yml: default the environment's HISTORICAL_DB_SCHEMA, and
  EMBEDDINGS_SCHEMA else HISTORICAL_DB_SCHEMA, else public).
#}

{% macro fail_var(name, problem) %}
  {{ exceptions.raise_compiler_error("var '" ~ name ~ "' " ~ problem) }}
{% endmacro %}

{% macro parse_date_var(name) %}
  {% set raw = var(name, none) %}
  {% if raw is none or raw == '' %}{{ return(none) }}{% endif %}
  {% set text = raw | string %}
  {% set match = modules.re.match('^(\\d{4})-(\\d{2})-(\\d{2})$', text) %}
  {% if not match %}
    {% do fail_var(name, "must be a date as YYYY-MM-DD, got '" ~ text ~ "'") %}
  {% endif %}
  {% set year = match.group(1) | int %}
  {% set month = match.group(2) | int %}
  {% set day = match.group(3) | int %}
  {% set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 %}
  {% set month_days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] %}
  {% if year < 1 or month < 1 or month > 12 or day < 1 or day > month_days[month - 1] %}
    {% do fail_var(name, "is not a calendar date: '" ~ text ~ "'") %}
  {% endif %}
  {{ return(text) }}
{% endmacro %}

{% macro parse_int_var(name, minimum, default=none) %}
  {% set raw = var(name, default) %}
  {% if raw is none or raw == '' %}{{ return(default) }}{% endif %}
  {% if raw is sameas true or raw is sameas false %}
    {% do fail_var(name, "must be a whole number >= " ~ minimum ~ ", got " ~ raw) %}
  {% endif %}
  {% set text = raw | string %}
  {% if not modules.re.match('^-?\\d+$', text) %}
    {% do fail_var(name, "must be a whole number >= " ~ minimum ~ ", got '" ~ text ~ "'") %}
  {% endif %}
  {% set value = text | int %}
  {% if value < minimum %}
    {% do fail_var(name, "must be a whole number >= " ~ minimum ~ ", got " ~ value) %}
  {% endif %}
  {{ return(value) }}
{% endmacro %}

{% macro parse_text_var(name) %}
  {% set raw = var(name, none) %}
  {% if raw is none %}{{ return(none) }}{% endif %}
  {% if raw is mapping or (raw is iterable and raw is not string) %}
    {% do fail_var(name, "must be a single text value") %}
  {% endif %}
  {% set text = raw | string %}
  {% if text | length == 0 or text | length > 64 %}
    {% do fail_var(name, "must be 1 to 64 characters long") %}
  {% endif %}
  {{ return(text) }}
{% endmacro %}

{% macro parse_text_list_var(name) %}
  {% set raw = var(name, []) %}
  {% if raw is none %}{{ return([]) }}{% endif %}
  {% if raw is string %}{% set raw = [raw] %}{% endif %}
  {% if raw is mapping or raw is not iterable %}
    {% do fail_var(name, "must be a list of instrument ids") %}
  {% endif %}
  {% set values = [] %}
  {% for item in raw %}
    {% set text = item | string %}
    {% if item is none or text | length == 0 or text | length > 64 %}
      {% do fail_var(name, "holds an empty or over-long (> 64 characters) instrument id") %}
    {% endif %}
    {% if text not in values %}{% do values.append(text) %}{% endif %}
  {% endfor %}
  {{ return(values) }}
{% endmacro %}

{% macro numeric_window_params() %}
  {% set window_days = parse_int_var('window_days', 1, 63) %}
  {% if window_days > 500000 %}
    {#- Its lookback could leave PostgreSQL's dates (from 4714 BC): run_request.MAX_WINDOW_DAYS. -#}
    {% do fail_var('window_days', "must be at most 500000, got " ~ window_days) %}
  {% endif %}
  {% set default_min_rows = [1, (87 * window_days) // 100] | max %}
  {% set min_rows = parse_int_var('min_days', 1, default_min_rows) %}
  {% if min_rows > window_days %}
    {% do fail_var('min_days', "must not exceed window_days (" ~ window_days ~ "), got " ~ min_rows) %}
  {% endif %}
  {% set frequency = var('frequency', 'daily') | string %}
  {% if frequency not in ['daily', 'weekly', 'month-end'] %}
    {% do fail_var('frequency', "must be one of daily, weekly, month-end, got '" ~ frequency ~ "'") %}
  {% endif %}
  {% set run_id = var('run_id', invocation_id) | string %}
  {% if not modules.re.match('^[A-Za-z0-9_.:-]{1,64}$', run_id) %}
    {% do fail_var('run_id', "must be 1 to 64 letters, digits or _.:- characters") %}
  {% endif %}
  {% set params = {
      'as_of': parse_date_var('as_of'),
      'start_date': parse_date_var('start_date'),
      'end_date': parse_date_var('end_date'),
      'frequency': frequency,
      'window_days': window_days,
      'lookback_days': lookback_days(window_days),
      'min_rows': min_rows,
      'market_id': parse_text_var('market_id'),
      'limit': parse_int_var('limit', 0),
      'offset': parse_int_var('offset', 0, 0),
      'instrument_ids': parse_text_list_var('instrument_ids'),
      'shard_index': parse_int_var('shard_index', 0, 0),
      'shard_count': parse_int_var('shard_count', 1, 1),
      'stage_part_index': parse_int_var('stage_part_index', 0, 0),
      'stage_part_count': parse_int_var('stage_part_count', 1, 1),
      'run_id': run_id,
  } %}
  {% if params.shard_index >= params.shard_count %}
    {% do fail_var('shard_index', "must be below shard_count (" ~ params.shard_count ~ "), got " ~ params.shard_index) %}
  {% endif %}
  {% if params.stage_part_index >= params.stage_part_count %}
    {% do fail_var('stage_part_index', "must be below stage_part_count (" ~ params.stage_part_count ~ "), got " ~ params.stage_part_index) %}
  {% endif %}
  {% if params.as_of and (params.start_date or params.end_date) %}
    {% do fail_var('as_of', "cannot be combined with start_date/end_date: give one as-of date or a range") %}
  {% endif %}
  {% if (params.start_date is none) != (params.end_date is none) %}
    {% do fail_var('start_date' if params.start_date is none else 'end_date', "is required with the other end of the range") %}
  {% endif %}
  {% if params.start_date and params.start_date > params.end_date %}
    {% do fail_var('start_date', "(" ~ params.start_date ~ ") is after end_date (" ~ params.end_date ~ ")") %}
  {% endif %}
  {% if not params.as_of and not params.start_date %}
    {% do params.update({'as_of': latest_trading_day()}) %}
  {% endif %}
  {# The first and last as-of dates the run can have, as SQL date literals: the days its
     windows can reach are [first_as_of - lookback_days, last_as_of]. #}
  {% do params.update({
      'first_as_of': sql_date(params.as_of or params.start_date),
      'last_as_of': sql_date(params.as_of or params.end_date),
  }) %}
  {{ return(params) }}
{% endmacro %}

{% macro latest_trading_day() %}
  {#- The last trade date of the daily returns, when `dbt run`/`dbt build` stages windows
      without dates (read at execution, after the returns are brought up to date); none
      when compiling for anything else. -#}
  {%- set daily_returns = ref('int_daily_returns_computed') -%}  {#- at parse time too: a dependency -#}
  {% if execute and flags.WHICH in ['run', 'build'] %}
    {% set latest = run_query('select max(trade_date)::text from ' ~ daily_returns) %}
    {{ return(latest.columns[0].values()[0]) }}
  {% endif %}
  {{ return(none) }}
{% endmacro %}

{% macro lookback_days(window_days) %}
  {#- SPEC "One window": the calendar days before the as-of date a window may reach back.
      window_days: a number, or SQL of one (then the result is SQL too). -#}
  {{ return(3 * window_days if window_days is number else '3 * (' ~ window_days ~ ')') }}
{% endmacro %}

{% macro sql_text(value) %}
  {#- A text literal; quotes are doubled so a value is always data, never SQL. -#}
  {%- if value is none -%}null::text{%- else -%}'{{ value | string | replace("'", "''") }}'::text{%- endif -%}
{% endmacro %}

{% macro sql_text_list(values) %}
  {#- Text literals separated by commas, for array[...]; empty for an empty list. -#}
  {%- set literals = [] -%}
  {%- for value in values -%}{%- do literals.append(sql_text(value)) -%}{%- endfor -%}
  {{- literals | join(', ') -}}
{% endmacro %}

{% macro sql_date(value) %}
  {%- if value is none -%}null::date{%- else -%}date '{{ value }}'{%- endif -%}
{% endmacro %}

{% macro float32_overflow_threshold() %}
  {#- The smallest double that rounds to float32 infinity: (2 - 2^-24) * 2^127. -#}
  {{- return('3.4028235677973366e38::double precision') -}}
{% endmacro %}
