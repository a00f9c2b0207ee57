{#
  on-run-start hook: numeric_window_vectors, the pgvector companion of
  numeric_window_embeddings. Every stored vector is there again as a pgvector `vector`
  (bit-identical values), keyed by embedding_id (deleted with its row), with its key's
  model_id, entity_id and as_of_date so that similar_windows filters without reading the wide
  table. A separate table, not a column: a vector column would push the original's rows past
  the TOAST threshold. store.py writes it next to every vector it writes; vectors stored
  before it existed are copied in by the next run (window_vectors.py).

  Made where pgvector is installed in the database, or where this user may create it (it is
  not a trusted extension). Off with the environment variable PROMETHEUS_PGVECTOR=off: the
  table is dropped (it holds nothing the original does not) and similar_windows raises.
#}
{% macro create_window_vectors() %}
{%- set vectors = source('embeddings', 'numeric_window_vectors') -%}
{%- set embeddings = source('embeddings', 'numeric_window_embeddings') -%}
{%- set switch = env_var('PROMETHEUS_PGVECTOR', 'on') | lower -%}
{%- if switch not in ('on', 'off') -%}
    {{ exceptions.raise_compiler_error("PROMETHEUS_PGVECTOR must be 'on' or 'off', got '" ~ switch ~ "'") }}
{%- endif -%}
do $ddl$
declare
    vector_schema text;
begin
    perform pg_advisory_xact_lock(hashtext('prometheus_numeric.window_vectors.ddl'));
{%- if switch == 'off' %}
    drop table if exists {{ vectors }};
{%- else %}
    if not exists (select from pg_extension where extname = 'vector')
        and exists (select from pg_available_extensions where name = 'vector') then
        begin
            create extension if not exists vector;
        exception when insufficient_privilege then
            null;  -- not this user's to create: similarity search stays off
        end;
    end if;
    select extnamespace::regnamespace::text into vector_schema
    from pg_extension
    where extname = 'vector';
    if vector_schema is not null and to_regclass('{{ vectors | replace("'", "''") }}') is null then
        execute format(
            'create table %s (
                embedding_id bigint primary key
                    references %s (embedding_id) on delete cascade,
                model_id varchar(64) not null,
                entity_id varchar(64) not null,
                as_of_date date not null,
                embedding %s.vector not null
            )',
            '{{ vectors | replace("'", "''") }}',
            '{{ embeddings | replace("'", "''") }}',
            vector_schema
        );
    end if;
{%- endif %}
end
$ddl$;
{% endmacro %}
