{#
  Post-hook of the staging tables: ANALYZE {{ this }} when it has no statistics yet (just
  built), or when rows_written_sql (a SQL count of the rows this run wrote) is a tenth of
  the rows the statistics know or more: autovacuum's own threshold, applied now, so the
  statements that read those rows next (the encoder, the run's tests, the next run's
  staging) are planned on them. Skipped otherwise: a small append barely moves the
  statistics, and analyzing on every run would cost every run its sampling. The CLI does
  the same for the embeddings table, which Python writes (store.refresh_statistics).
  pg_stats (not pg_statistic, superuser-only) so an ordinary role can run it.
#}
{% macro analyze_if_stale(rows_written_sql=none) -%}
do $analyze$
begin
    if not exists (
        select 1
        from pg_stats
        where schemaname = {{ sql_text(this.schema) }}
            and tablename = {{ sql_text(this.identifier) }}
    )
    {%- if rows_written_sql is not none %}
        or ({{ rows_written_sql }}) >= 0.1 * (
            select reltuples from pg_class where oid = {{ sql_text(this) }}::regclass
        )
    {%- endif %} then
        analyze {{ this }};
    end if;
end
$analyze$
{%- endmacro %}
