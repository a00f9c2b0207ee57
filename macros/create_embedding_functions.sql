{#
  Installs the SQL functions analysts use to read stored vectors, in the schema of
  numeric_window_embeddings (source 'embeddings'):

    embedding_to_array(bytea) returns real[]
        Little-endian float32 bytes to a real[], as numpy.frombuffer(bytes, dtype='<f4'):
        each value is rebuilt from its sign, exponent and mantissa bits with exact double
        arithmetic (+-significand x 2^k, significand < 2^24, is exact in double precision and
        exactly representable as real; a subnormal uses k = 1 - 150 and no implicit bit), so
        every finite value, -0, the subnormals and +-Infinity come back bit for bit. NaN comes back as NaN (PostgreSQL keeps no NaN payload or sign). A length that
        is not a multiple of 4 is an error, as in numpy; empty bytes give an empty array.
    embedding_cosine(bytea, bytea) returns double precision
        Cosine similarity in double precision of two decoded vectors; NULL when either
        vector is all zeros; an error when their lengths differ.

  SQL and plpgsql only, no extension (docs/performance.md has their speed). The bytes are
  detoasted once per call (get_byte on a compressed value would decompress it at every
  call), then one generate_series pass reads four bytes per value. Runs on every dbt invocation
  (on-run-start): create or replace is idempotent, and the advisory lock keeps concurrent
  first runs from racing on the catalog ("tuple concurrently updated").
#}
{% macro create_embedding_functions() %}
{%- set schema_ident = embeddings_schema() -%}
do $ddl$
begin
    perform pg_advisory_xact_lock(hashtext('prometheus_numeric.embedding_functions.ddl'));
    create schema if not exists {{ schema_ident }};

    -- Raises; typed like its third argument so a sql function can call it inside a case.
    create or replace function {{ schema_ident }}.embedding_bytes_error(
        function_name text, message text, result_type anyelement
    )
    returns anyelement
    language plpgsql volatile parallel safe
    as $fn$
    begin
        raise exception '%: %', function_name, message
            using errcode = '22023';  -- invalid_parameter_value
    end
    $fn$;

    create or replace function {{ schema_ident }}.embedding_to_array(vector bytea)
    returns real[]
    language sql immutable strict parallel safe
    as $fn$
    select case
        when octet_length(vector) % 4 <> 0 then
            {{ schema_ident }}.embedding_bytes_error(
                'embedding_to_array',
                octet_length(vector) || ' bytes are not a whole number of float32 values',
                null::real[]
            )
        else array(
            -- Exact: (+-1) x significand (< 2^24) x 2^k is a double, and a float32 value.
            select
                case
                    when words.exponent < 255 then (
                        (1 - 2 * words.sign)
                        * (words.mantissa + case when words.exponent > 0 then 8388608 else 0 end)
                        ::double precision
                        * 2 ^ (greatest(words.exponent, 1) - 150)
                    )::real
                    when words.mantissa <> 0 then 'NaN'::real
                    when words.sign = 1 then '-Infinity'::real
                    else 'Infinity'::real
                end
            from (
                select
                    i as position,
                    get_byte(detoasted.bytes, 4 * i + 3) >> 7 as sign,
                    ((get_byte(detoasted.bytes, 4 * i + 3) & 127) << 1)
                    | (get_byte(detoasted.bytes, 4 * i + 2) >> 7) as exponent,
                    ((get_byte(detoasted.bytes, 4 * i + 2) & 127) << 16)
                    | (get_byte(detoasted.bytes, 4 * i + 1) << 8)
                    | get_byte(detoasted.bytes, 4 * i) as mantissa
                -- offset 0: detoasted here, once, not inlined into every get_byte above.
                from (select vector || '\x'::bytea as bytes offset 0) as detoasted
                cross join lateral
                    generate_series(0, octet_length(detoasted.bytes) / 4 - 1) as i
            ) as words
            order by words.position
        )
    end
    $fn$;

    -- plpgsql, not sql: its decodes are simple expressions whose plans stay cached, where a
    -- sql function would re-plan embedding_to_array at every call.
    create or replace function {{ schema_ident }}.embedding_cosine(
        left_vector bytea, right_vector bytea
    )
    returns double precision
    language plpgsql immutable strict parallel safe
    as $fn$
    declare
        left_values real[];
        right_values real[];
        cosine double precision;
    begin
        if octet_length(left_vector) <> octet_length(right_vector) then
            raise exception 'embedding_cosine: vectors of % and % bytes have different lengths',
                octet_length(left_vector), octet_length(right_vector)
                using errcode = '22023';  -- invalid_parameter_value
        end if;
        left_values := {{ schema_ident }}.embedding_to_array(left_vector);
        right_values := {{ schema_ident }}.embedding_to_array(right_vector);
        select
            sum(pairs.x::double precision * pairs.y::double precision)
            / nullif(
                sqrt(sum(pairs.x::double precision * pairs.x::double precision))
                * sqrt(sum(pairs.y::double precision * pairs.y::double precision)),
                0
            )
        into cosine
        from unnest(left_values, right_values) as pairs (x, y);
        return cosine;
    end
    $fn$;
end
$ddl$;
{% endmacro %}
