# lakeloop: every target sets up what it needs, idempotently (a stamp under .venv/; the jars: `lakeloop setup`).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_DAYS ?= 5
DEMO_ROWS ?= 300
DEMO_START ?= 2026-01-01

.PHONY: help install jars kafka-jars setup browser test lint demo bench bench-ingest bench-validate bench-train bench-monitor bench-dag bench-job-start bench-serve bench-scaling bench-connect kafka-up kafka-down kafka-status airflow-up airflow-down airflow-status cluster-up cluster-down cluster-status dist clean

help:
	@echo "make demo   - the whole lifecycle on the embedded defaults"
	@echo "make test   - unit + integration tests (real Spark, Delta and Kafka)"
	@echo "make bench  - every benchmark under bench/"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed

# The JVM jars (Delta + spark-sql-kafka for Spark, the Kafka broker's own) from Maven Central,
# through the same code a pip-installed lakeloop runs: `lakeloop setup` resolves them once per
# user into ~/.cache/lakeloop/jars/<pyspark>-<delta>/ (LAKELOOP_JARS_CACHE moves it) with the
# poms + Maven settings shipped in the package (src/lakeloop/resources/maven/, linked from
# infra/), and writes spark-defaults.conf into the venv's pyspark. Done: a no-op in under 1 s.
jars: install
	$(VENV)/bin/lakeloop setup

kafka-jars: jars

setup: install jars

kafka-up: setup
	$(VENV)/bin/lakeloop kafka up
kafka-down: setup
	$(VENV)/bin/lakeloop kafka down
kafka-status: setup
	$(VENV)/bin/lakeloop kafka status

# The project's own Airflow (api-server + scheduler, SQLite, LocalExecutor) on dags/:
# AIRFLOW_HOME is .airflow/ here; the UI answers on http://127.0.0.1:8080.
airflow-up: setup
	$(VENV)/bin/lakeloop airflow up
airflow-down: setup
	$(VENV)/bin/lakeloop airflow down
airflow-status: setup
	$(VENV)/bin/lakeloop airflow status

# A real cluster on this machine (lakeloop.cluster): HDFS NameNode + DataNode (the Hadoop jars
# `lakeloop setup` resolves), a Spark standalone master + 2 workers (the pip install's
# spark-class) and an MLflow tracking server, under .cluster/. The `cluster` config profile
# (`--env cluster`) points jobs at it: hdfs://127.0.0.1:9820, spark://127.0.0.1:7077 (UI
# http://127.0.0.1:8090), http://127.0.0.1:5000.
cluster-up: setup
	$(VENV)/bin/lakeloop cluster up
cluster-down: setup
	$(VENV)/bin/lakeloop cluster down
cluster-status: setup
	$(VENV)/bin/lakeloop cluster status

# The package for clusters: dist/lakeloop-<version>-py3-none-any.whl and, for spark-submit
# --py-files where pip is not available, dist/lakeloop-<version>.zip (lakeloop only; see
# infra/dist.py for why its dependencies are not in it).
dist: install
	$(PY) infra/dist.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Debian's Chromium, for the Data Docs test (pages opened from disk with the network blocked).
# Installed only when /usr/bin/chromium is missing (needs root, as on CI); a no-op otherwise.
browser:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@test -x /usr/bin/chromium || { echo "chromium is still missing: install Debian's chromium package as root"; exit 1; }

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/lakeloop demo --days $(DEMO_DAYS) --rows-per-day $(DEMO_ROWS) --start $(DEMO_START)

bench: bench-ingest bench-validate bench-train bench-job-start bench-scaling bench-monitor bench-dag bench-serve

bench-ingest: setup
	$(PY) bench/ingest.py $(BENCH_ARGS)

bench-validate: setup
	$(PY) bench/validate.py $(BENCH_ARGS)

bench-train: setup
	$(PY) bench/train.py $(BENCH_ARGS)

bench-monitor: setup
	$(PY) bench/monitor.py $(BENCH_ARGS)

bench-dag: setup
	$(PY) bench/dag.py $(BENCH_ARGS)

bench-job-start: setup
	$(PY) bench/job_start.py $(BENCH_ARGS)

bench-serve: setup
	$(PY) bench/serve.py $(BENCH_ARGS)

bench-scaling: setup
	$(PY) bench/scaling.py $(BENCH_ARGS)

bench-connect: setup
	$(PY) bench/connect.py $(BENCH_ARGS)

clean:
	-$(VENV)/bin/lakeloop airflow down
	-$(VENV)/bin/lakeloop kafka down
	-$(VENV)/bin/lakeloop kafka down --env test
	-$(VENV)/bin/lakeloop cluster down
	-$(VENV)/bin/lakeloop cluster down --env test
	rm -rf .lakehouse .kafka .kafka-test .mlflow .bench .airflow .cluster .cluster-test .online .serving dist
