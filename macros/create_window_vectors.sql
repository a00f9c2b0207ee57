{#
  on-run-start hook: numeric_window_vectors, the pgvector companion of
  numeric_window_embeddings. Every stored vector is there again as a pgvector `vector`
  (bit-identical values), keyed by embedding_id (deleted with its row), with its key's
  model_id, entity_id and as_of_date so that similar_windows filters without reading the wide
  table. A separate table, not a column: the original keeps its columns and its scans stay
  as they are. store.py writes it next to every vector it writes; a vector another writer
  stores or rewrites, or whose key it changes (the original tool, an older version), loses
  its companion row (the trigger below) and is copied in again by the next run
  (window_vectors.py).

  Made where pgvector is installed in the database, or where this user may create it (it is
  not a trusted extension), and where numeric_window_embeddings has what it needs: a unique
  embedding_id drawn from a sequence. Off with the environment variable
  PROMETHEUS_PGVECTOR=off: the table is dropped (it holds nothing the original does not) and
  similar_windows raises. A --dry-run (var dry_run) changes none of it.
#}
{% macro create_window_vectors() %}
{#- Without the database: function bodies and names stay right in a copy of the database. -#}
{%- set vectors = source('embeddings', 'numeric_window_vectors').include(database=false) -%}
{%- set embeddings = source('embeddings', 'numeric_window_embeddings').include(database=false) -%}
{%- set vectors_text = "'" ~ (vectors | string | replace("'", "''")) ~ "'" -%}
{%- set embeddings_text = "'" ~ (embeddings | string | replace("'", "''")) ~ "'" -%}
{%- set forget_row = adapter.quote(embeddings.schema) ~ '.numeric_window_vectors_forget' -%}
{%- set switch = env_var('PROMETHEUS_PGVECTOR', 'on') | lower -%}
{%- if switch not in ('on', 'off') -%}
    {{ exceptions.raise_compiler_error("PROMETHEUS_PGVECTOR must be 'on' or 'off', got '" ~ switch ~ "'") }}
{%- endif -%}
{%- if var('dry_run', false) -%}
select 1
{%- else -%}
do $ddl$
declare
    vector_schema text;
begin
    perform pg_advisory_xact_lock(hashtext('prometheus_numeric.window_vectors.ddl'));
{%- if switch == 'off' %}
    if to_regclass({{ vectors_text }}) is not null then
        drop trigger if exists numeric_window_vectors_forget on {{ embeddings }};
        drop trigger if exists numeric_window_vectors_follow_key on {{ embeddings }};
        drop table {{ vectors }};
    end if;
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
    if vector_schema is null then
        return;
    end if;
    -- The foreign key needs a unique embedding_id, the writer a sequence to draw ids from
    -- (a table of the original tool may have neither): else similarity search stays off.
    if pg_get_serial_sequence({{ embeddings_text }}, 'embedding_id') is null or not exists (
        select 1
        from pg_index as idx
        inner join pg_attribute as att
            on att.attrelid = idx.indrelid and att.attnum = idx.indkey[0]
        where idx.indrelid = {{ embeddings_text }}::regclass
            and idx.indisunique and idx.indnkeyatts = 1 and idx.indpred is null
            and att.attname = 'embedding_id'
    ) then
        return;
    end if;
    if to_regclass({{ vectors_text }}) is null then
        execute format(
            'create table %s (
                embedding_id bigint primary key
                    references %s (embedding_id) on delete cascade,
                model_id varchar(64) not null,
                entity_id varchar(64) not null,
                as_of_date date not null,
                embedding %s.vector not null
            )',
            {{ vectors_text }}, {{ embeddings_text }}, vector_schema
        );
    end if;
    create or replace function {{ forget_row }}()
    returns trigger
    language plpgsql
    as $fn$
    begin
        delete from {{ vectors }} where embedding_id = old.embedding_id;
        return null;
    end
    $fn$;
    -- A vector or key rewritten by any writer loses its stale companion row (it copies the
    -- key); this project's writer writes the new one right after, another writer's is copied
    -- by the next run. Created once: a trigger's DDL locks the table against the writers of
    -- runs in flight. It replaces numeric_window_vectors_forget, which watched the vector only.
    if not exists (
        select from pg_trigger
        where tgrelid = {{ embeddings_text }}::regclass
            and tgname = 'numeric_window_vectors_follow_key'
    ) then
        drop trigger if exists numeric_window_vectors_forget on {{ embeddings }};
        create trigger numeric_window_vectors_follow_key
        after update of vector, entity_type, entity_id, as_of_date, model_id on {{ embeddings }}
        for each row when (
            (old.vector, old.entity_type, old.entity_id, old.as_of_date, old.model_id)
            is distinct from
            (new.vector, new.entity_type, new.entity_id, new.as_of_date, new.model_id)
        )
        execute function {{ forget_row }}();
    end if;
{%- endif %}
end
$ddl$;
{%- endif %}
{% endmacro %}
