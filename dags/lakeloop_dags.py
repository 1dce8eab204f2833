"""The DAGs of every pipeline spec in this project's conf/pipelines/ (see
lakeloop.orchestration.dags): `<pipeline>_lifecycle` and `<pipeline>_training`.

Declarations only: no Spark, no table reads, no job logic at parse time. The config
environment comes from LAKELOOP_ENV and LAKELOOP_SET, the project from LAKELOOP_HOME (all set
by `lakeloop airflow up`)."""

from lakeloop.orchestration.dags import build_all

globals().update(build_all())
