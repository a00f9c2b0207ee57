{#- The quoted schema of numeric_window_embeddings and of the embedding functions. -#}
{% macro embeddings_schema() %}
  {{- return(adapter.quote(source('embeddings', 'numeric_window_embeddings').schema)) -}}
{% endmacro %}
