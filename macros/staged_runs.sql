{#
  Pre-hook of numeric_windows: a run (re-)staged under a run_id replaces that run's rows. A
  delete by the run_id index; dbt's delete+insert strategy planned its
  `run_id in (select ...)` as a scan of every run's rows (0.4-0.7 s a run, growing).
#}
{% macro forget_staged_run() -%}
{#- A run staged in parts starts with part 0: it forgets the whole run, later parts add. -#}
{%- if is_incremental() and numeric_window_params().stage_part_index == 0 -%}
delete from {{ this }} where run_id = {{ sql_text(numeric_window_params().run_id) }}
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}


{#
  SQL counting the windows staged under this run's run_id that the run reads back: what the
  numeric_windows post-hook compares with the table's size to decide on an ANALYZE. Windows
  found already stored (--skip-existing) are left out: nothing reads them but one test, so a
  re-run of a finished range does not analyze for them (0.4 s). A run staged in parts counts
  once, after its last part (earlier parts count 0).
#}
{% macro staged_run_rows() -%}
{%- set params = numeric_window_params() -%}
{%- if params.stage_part_index == params.stage_part_count - 1 -%}
select count(*) from {{ this }}
where run_id = {{ sql_text(params.run_id) }} and window_status <> 'already_stored'
{%- else -%}
select 0
{%- endif -%}
{%- endmacro %}
