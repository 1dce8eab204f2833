# lakeloop: every target sets up what it needs, idempotently (stamps under .venv/ and .jars/).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_DAYS ?= 3
DEMO_ROWS ?= 400
DEMO_START ?= 2026-01-01

.PHONY: help install jars kafka-jars setup test lint demo bench bench-ingest bench-validate bench-train kafka-up kafka-down kafka-status clean

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

# Delta + spark-sql-kafka from Maven Central; keep only what pyspark does not ship.
.jars/spark/.stamp: infra/spark-jars/pom.xml infra/maven-settings.xml $(VENV)/.installed
	cd infra/spark-jars && mvn -q -B -s ../maven-settings.xml dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/spark-all
	$(PY) -m lakeloop.jars select --all .jars/spark-all --out .jars/spark
	$(PY) -m lakeloop.sparkdefaults
	touch $@

jars: .jars/spark/.stamp

# The Kafka broker's own jars (another pom).
.jars/kafka/.stamp: infra/kafka/pom.xml infra/maven-settings.xml
	rm -rf .jars/kafka
	cd infra/kafka && mvn -q -B -s ../maven-settings.xml dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/kafka
	touch $@

kafka-jars: .jars/kafka/.stamp

setup: install jars kafka-jars

kafka-up: setup
	$(VENV)/bin/lakeloop kafka up
kafka-down: setup
	$(VENV)/bin/lakeloop kafka down
kafka-status: setup
	$(VENV)/bin/lakeloop kafka status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/lakeloop demo --days $(DEMO_DAYS) --rows-per-day $(DEMO_ROWS) --start $(DEMO_START)

bench: bench-ingest bench-validate bench-train

bench-ingest: setup
	$(PY) bench/ingest.py $(BENCH_ARGS)

bench-validate: setup
	$(PY) bench/validate.py $(BENCH_ARGS)

bench-train: setup
	$(PY) bench/train.py $(BENCH_ARGS)

clean:
	-$(VENV)/bin/lakeloop kafka down
	-$(VENV)/bin/lakeloop kafka down --env test
	rm -rf .lakehouse .kafka .kafka-test .mlflow .bench
