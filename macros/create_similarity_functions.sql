{#
  on-run-start hook: the analysts' nearest-window functions, next to embedding_to_array.

    similar_windows(query_entity_id text, query_as_of_date date, query_model_id text,
                    k integer, exclude_same_instrument boolean default false,
                    before_as_of_only boolean default false)
    returns table (entity_id text, as_of_date date, distance double precision)

  (The arguments are named query_*: PostgreSQL gives a function's arguments and its result
  columns one namespace.)

  The k stored windows of the same model and dimension nearest to that key's vector by cosine
  distance (1 - cosine similarity), nearest first, ties by entity_id then as_of_date; the key
  itself is left out, and so are vectors of all zeros (no direction). Optional: leave out the
  key's instrument, keep only windows before its as-of date (no look-ahead).

  Always exact. pgvector ranks in float32: each of its distances is within t = 4 x n x 2^-24
  of the exact one for n dimensions (a float32 sum of n products errs by at most about
  n x 2^-24 of the sum of their magnitudes, which cosine scales to at most 1, and it has
  three such sums). So every window whose exact distance could be among the k nearest has a
  float32 distance within 2t of the k-th float32 distance; those candidates (k + 100 of them, or all of them when more are that
  close) are re-ranked in double precision, the distances returned are the double ones.

    similar_windows_approximate(same arguments)

  The same answer through an HNSW index (macro create_similar_windows_index), approximate:
  pgvector's index search may miss true neighbours (docs/performance.md has its recall). The
  distances it returns are exact.

  Both read numeric_window_vectors (macros/create_window_vectors.sql); without it (no
  pgvector, or PROMETHEUS_PGVECTOR=off) they raise an error that says so.
#}
{% macro create_similarity_functions() %}
{%- set schema_ident = embeddings_schema() -%}
{%- set vectors = source('embeddings', 'numeric_window_vectors') -%}
{%- set embeddings = source('embeddings', 'numeric_window_embeddings') -%}
{%- set vectors_text = "'" ~ (vectors | string | replace("'", "''")) ~ "'" -%}
do $ddl$
begin
    perform pg_advisory_xact_lock(hashtext('prometheus_numeric.embedding_functions.ddl'));
    create schema if not exists {{ schema_ident }};

    -- The exact cosine distance of two vectors' values, in double precision.
    create or replace function {{ schema_ident }}.similar_windows_distance(
        left_values real[], right_values real[]
    )
    returns double precision
    language sql immutable strict parallel safe
    as $fn$
    select 1 - sum(pairs.x::double precision * pairs.y)
        / (sqrt(sum(pairs.x::double precision * pairs.x))
            * sqrt(sum(pairs.y::double precision * pairs.y)))
    from unnest(left_values, right_values) as pairs (x, y)
    $fn$;

    -- The vector of one key, after checking that similarity search can answer for it.
    -- Returns the schema of pgvector's type and operators.
    create or replace function {{ schema_ident }}.similar_windows_check(
        function_name text, entity_id text, as_of_date date, model_id text, k integer
    )
    returns text
    language plpgsql stable
    as $fn$
    declare
        vector_schema text;
    begin
        select extnamespace::regnamespace::text into vector_schema
        from pg_extension
        where extname = 'vector';
        if vector_schema is null or to_regclass({{ vectors_text }}) is null then
            raise exception '%: similarity search needs pgvector in this database: install the extension "vector" (the private server has it) and run the backfill or any dbt command once; it is off while PROMETHEUS_PGVECTOR=off', function_name
                using errcode = '0A000';  -- feature_not_supported
        end if;
        if k is null or k < 1 then
            raise exception '%: k must be a positive number of windows, got %', function_name,
                coalesce(k::text, 'NULL')
                using errcode = '22023';  -- invalid_parameter_value
        end if;
        if not exists (
            select 1
            from {{ vectors }} as vectors
            where vectors.entity_id = similar_windows_check.entity_id
                and vectors.as_of_date = similar_windows_check.as_of_date
                and vectors.model_id = similar_windows_check.model_id
        ) then
            raise exception '%: no vector is stored for entity_id %, as_of_date %, model_id %',
                function_name, quote_literal(entity_id), as_of_date, quote_literal(model_id)
                using errcode = 'P0002';  -- no_data_found
        end if;
        return vector_schema;
    end
    $fn$;

    create or replace function {{ schema_ident }}.similar_windows(
        query_entity_id text, query_as_of_date date, query_model_id text, k integer,
        exclude_same_instrument boolean default false,
        before_as_of_only boolean default false
    )
    returns table (entity_id text, as_of_date date, distance double precision)
    language plpgsql stable
    as $fn$
    declare
        vector_schema text := {{ schema_ident }}.similar_windows_check(
            'similar_windows', query_entity_id, query_as_of_date, query_model_id, k);
        ranked text := format($sql$
            select
                windows.entity_id::text as entity_id,
                windows.as_of_date,
                windows.embedding,
                windows.embedding operator(%1$s.<=>) query.embedding as float_distance
            from {{ vectors }} as windows
            cross join query
            where windows.model_id = $3
                and %1$s.vector_dims(windows.embedding) = %1$s.vector_dims(query.embedding)
                and not (windows.entity_id = $1 and windows.as_of_date = $2)
                and not ($4 and windows.entity_id = $1)
                and not ($5 and windows.as_of_date >= $2)
                and (windows.embedding operator(%1$s.<=>) query.embedding) <> 'NaN'
        $sql$, vector_schema);
    begin
        return query execute format($sql$
            with query as (
                select embedding, embedding::real[] as query_values
                from {{ vectors }}
                where entity_id = $1 and as_of_date = $2 and model_id = $3
            ),
            nearest as (
                %1$s
                order by float_distance
                limit $6 + 100
            ),
            bounds as (
                select
                    coalesce(max(float_distance) filter (where position = $6),
                        max(float_distance))
                    + 2 * $7 * (select cardinality(query_values) from query) as within,
                    max(float_distance) as last_distance
                from (
                    select float_distance, row_number() over (order by float_distance) as position
                    from nearest
                ) as numbered
            ),
            -- The first candidates, unless windows past them are as close as the k-th
            -- could be: then (rarely) every window that close, in a second scan.
            candidates as (
                select nearest.entity_id, nearest.as_of_date, nearest.embedding
                from nearest
                where (select last_distance > within from bounds)
                union all
                select close.entity_id, close.as_of_date, close.embedding
                from (%1$s) as close
                where (select last_distance <= within from bounds)
                    and close.float_distance <= (select within from bounds)
            )
            select candidates.entity_id, candidates.as_of_date, exact.distance
            from candidates
            cross join query
            cross join lateral (
                select {{ schema_ident }}.similar_windows_distance(
                    candidates.embedding::real[], query.query_values) as distance
            ) as exact
            order by exact.distance, candidates.entity_id, candidates.as_of_date
            limit $6
        $sql$, ranked)
        using query_entity_id, query_as_of_date, query_model_id,
            exclude_same_instrument, before_as_of_only, k,
            -- pgvector's float32 error per dimension (the macro's notes).
            4 * 2 ^ -24;
    end
    $fn$;

    create or replace function {{ schema_ident }}.similar_windows_approximate(
        query_entity_id text, query_as_of_date date, query_model_id text, k integer,
        exclude_same_instrument boolean default false,
        before_as_of_only boolean default false
    )
    returns table (entity_id text, as_of_date date, distance double precision)
    language plpgsql volatile
    as $fn$
    declare
        vector_schema text := {{ schema_ident }}.similar_windows_check(
            'similar_windows_approximate', query_entity_id, query_as_of_date, query_model_id, k);
        dims integer;
    begin
        select {{ schema_ident }}.similar_windows_dims(
            vector_schema, query_entity_id, query_as_of_date, query_model_id)
        into dims;
        -- The index is searched until k windows pass the filters (pgvector 0.8's iterative
        -- scan), from a candidate list at least as long as pgvector's default.
        perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
        perform set_config('hnsw.ef_search', greatest(40, k)::text, true);
        return query execute format($sql$
            with query as (
                select embedding, embedding::real[] as query_values
                from {{ vectors }}
                where entity_id = $1 and as_of_date = $2 and model_id = $3
            ),
            candidates as (
                select windows.entity_id::text as entity_id, windows.as_of_date, windows.embedding
                from {{ vectors }} as windows
                where %1$s.vector_dims(windows.embedding) = %2$s
                    and windows.model_id = $3
                    and not (windows.entity_id = $1 and windows.as_of_date = $2)
                    and not ($4 and windows.entity_id = $1)
                    and not ($5 and windows.as_of_date >= $2)
                order by windows.embedding::%1$s.vector(%2$s)
                    operator(%1$s.<=>) (select embedding::%1$s.vector(%2$s) from query)
                limit $6
            )
            select candidates.entity_id, candidates.as_of_date, exact.distance
            from candidates
            cross join query
            cross join lateral (
                select {{ schema_ident }}.similar_windows_distance(
                    candidates.embedding::real[], query.query_values) as distance
            ) as exact
            where exact.distance is not null and exact.distance <> 'NaN'
            order by exact.distance, candidates.entity_id, candidates.as_of_date
        $sql$, vector_schema, dims)
        using query_entity_id, query_as_of_date, query_model_id, exclude_same_instrument, before_as_of_only, k;
    end
    $fn$;

    create or replace function {{ schema_ident }}.similar_windows_dims(
        vector_schema text, entity_id text, as_of_date date, model_id text
    )
    returns integer
    language plpgsql stable
    as $fn$
    declare
        dims integer;
    begin
        execute format(
            'select %s.vector_dims(embedding) from {{ vectors }}
             where entity_id = $1 and as_of_date = $2 and model_id = $3', vector_schema)
        into dims
        using entity_id, as_of_date, model_id;
        return dims;
    end
    $fn$;
end
$ddl$;
{% endmacro %}


{#
  run-operation: the HNSW index similar_windows_approximate searches, for vectors of `dims`
  dimensions (cosine). Built once; pgvector keeps it up to date on every write, which makes
  writes slower: build it when you need it (docs/performance.md has its build time). The
  graph builds fastest when it fits in maintenance_work_mem (an optional argument).
    dbt run-operation create_similar_windows_index --args '{dims: 384, maintenance_work_mem: 4GB}'
#}
{% macro create_similar_windows_index(dims=384, maintenance_work_mem=none) %}
{%- if dims is not number or dims < 1 or dims > 2000 -%}
    {{ exceptions.raise_compiler_error("create_similar_windows_index: dims must be a whole number of dimensions from 1 to 2000 (pgvector's HNSW limit), got " ~ dims) }}
{%- endif -%}
{%- set vectors = source('embeddings', 'numeric_window_vectors') -%}
{%- set vector_schema = run_query("select extnamespace::regnamespace::text from pg_extension where extname = 'vector'") -%}
{%- if vector_schema | length == 0 or vector_schema.rows[0][0] is none -%}
    {{ exceptions.raise_compiler_error("create_similar_windows_index: needs pgvector in this database (the extension vector)") }}
{%- endif -%}
{%- set schema = vector_schema.rows[0][0] -%}
{%- set index_name = 'numeric_window_vectors_hnsw_' ~ dims -%}
{% do log("building " ~ index_name ~ " on " ~ vectors ~ " (this takes minutes on a large table)", info=true) %}
{% call statement('create_index') -%}
    {% if maintenance_work_mem %}set maintenance_work_mem = '{{ maintenance_work_mem | replace("'", "") }}';{% endif %}
    create index if not exists {{ index_name }}
    on {{ vectors }} using hnsw ((embedding::{{ schema }}.vector({{ dims }})) {{ schema }}.vector_cosine_ops)
    where {{ schema }}.vector_dims(embedding) = {{ dims }}
{%- endcall %}
{% endmacro %}
