{#
  on-run-start hook, first of all: when the backfill CLI invokes dbt it passes the var
  cli_server, the identity of the server it resolved with libpq's rules (PGSERVICE, PG*
  variables, pgpass, defaults; python/prometheus/numeric/connection.py). If dbt's target
  (profiles.yml) is another server or database, the run stops here, before anything is
  written, with one line naming both. The identity is queries.SERVER_IDENTITY's: the
  server's start time, port and database, the same however one connects to it.
#}
{% macro check_target_server() -%}
{%- set expected = var('cli_server', none) -%}
{%- if expected is not none and execute -%}
    {%- set found = run_query(
        "select pg_postmaster_start_time()::text || ' port ' || current_setting('port')"
        ~ " || ' database ' || current_database()").columns[0].values()[0] -%}
    {%- if found != expected -%}
        {{ exceptions.raise_compiler_error(
            "dbt's target (profile '" ~ target.profile_name ~ "', target '" ~ target.name
            ~ "': " ~ found ~ ") is not the server the command connects to (" ~ expected
            ~ "); point the profile at the same server (the project's profiles.example.yml"
            ~ " reads the PG* variables)") }}
    {%- endif -%}
{%- endif -%}
select 1
{%- endmacro %}
