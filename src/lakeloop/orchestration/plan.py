"""What the DAGs of a spec are, as plain data: their ids, tasks, order, the tables each task
writes (its Airflow Assets) and the job arguments. No Airflow or Spark import: the DAG factory
(`orchestration.dags`), the demo's summary and the tests read the same plan."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lakeloop.config import AppConfig
from lakeloop.spec import Pipeline, PipelineSpec

ASSET_SCHEME = "lakeloop"
RETRAIN = "retrain"  # the Asset the lifecycle emits when the monitor recommends retraining
RETRAIN_TASK = "retrain_trigger"
CHAMPION_TASK = "champion_check"
GUARD_TASK = "triggered_only"  # with airflow.scheduled false: skips the scheduler's own runs
TRAINING_DATE_TASK = "training_date"


def day_start(day: dt.date, timezone: str) -> dt.datetime:
    """Midnight of `day` in the pipeline's zone: the logical date of that day's run."""
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(timezone))


def local_day(when: Any, timezone: str) -> dt.date:
    """The day of an instant (a datetime or an ISO string, `Z` allowed) in the pipeline's zone."""
    instant = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    return instant.astimezone(ZoneInfo(timezone)).date()


def lifecycle_dag_id(pipeline: str) -> str:
    return f"{pipeline}_lifecycle"


def training_dag_id(pipeline: str) -> str:
    return f"{pipeline}_training"


def asset_uri(pipeline: str, table: str) -> str:
    """`lakeloop://<pipeline>/<schema.table>`: one Asset per Delta table a stage writes."""
    return f"{ASSET_SCHEME}://{pipeline}/{table}"


def retrain_uri(pipeline: str) -> str:
    return f"{ASSET_SCHEME}://{pipeline}/{RETRAIN}"


def online_uri(pipeline: str) -> str:
    """The online store's feature rows of the pipeline, written by materialize."""
    return f"{ASSET_SCHEME}://{pipeline}/online_store"


def model_uri(pipeline: str, model: str) -> str:
    """The registered model (its `champion` alias), written by train."""
    return f"{ASSET_SCHEME}://{pipeline}/models/{model}"


@dataclass(frozen=True)
class JobTask:
    job: str
    upstream: tuple[str, ...]
    writes: tuple[str, ...]  # Asset URIs
    spark: bool = True  # a spark-submit of jobs/<job>.py; else a Python task (no JVM)


def _tables(spec: PipelineSpec, keys: list[str]) -> tuple[str, ...]:
    """The tables' Asset URIs, each once (two file sources may feed one bronze table)."""
    return tuple(dict.fromkeys(asset_uri(spec.name, spec.table(k)) for k in keys))


def lifecycle_tasks(spec: PipelineSpec) -> list[JobTask]:
    """ingest_files ∥ ingest_kafka → validate → build_features → predict → monitor → report,
    and build_features → materialize (with `serving:`), each present when the spec has what it
    needs (sources, expectations, features, a model)."""
    tasks: list[JobTask] = []
    ingest: list[str] = []
    if spec.sources.files:
        tasks.append(
            JobTask("ingest_files", (), _tables(spec, [s.table for s in spec.sources.files]))
        )
        ingest.append("ingest_files")
    if spec.sources.kafka:
        keys = [k for s in spec.sources.kafka for k in (s.table, s.dead_letter_table)]
        tasks.append(JobTask("ingest_kafka", (), _tables(spec, keys)))
        ingest.append("ingest_kafka")
    last = tuple(ingest)
    if spec.expectations:
        keys = [k for v in spec.expectations for k in (v.silver, v.quarantine)]
        tasks.append(JobTask("validate", last, _tables(spec, keys)))
        last = ("validate",)
    if spec.features is not None:
        tasks.append(JobTask("build_features", last, _tables(spec, [spec.features.table])))
        last = ("build_features",)
        if spec.model is not None:
            # no champion yet (a new pipeline): predict, monitor and report are skipped and
            # the retrain trigger asks for the first model
            tasks.append(JobTask(CHAMPION_TASK, last, (), spark=False))
            preds = _tables(spec, [spec.model.predictions])
            tasks.append(JobTask("predict", (CHAMPION_TASK,), preds))
            metrics = ["metrics_drift", "metrics_quality", "metrics_data_quality"]
            tasks.append(
                JobTask("monitor", ("predict",), _tables(spec, [*metrics, "metrics_decisions"]))
            )
            tasks.append(JobTask("report", ("monitor",), ()))
            if spec.serving is not None:
                # the online store: the latest feature row per entity, for `lakeloop serve`
                tasks.append(JobTask("materialize", ("build_features",), (online_uri(spec.name),)))
    return tasks


def training_tasks(spec: PipelineSpec) -> list[JobTask]:
    """build_training_set → train (which includes the champion gate); none without a model."""
    if spec.model is None or spec.label is None or spec.features is None:
        return []
    train_writes = (
        *_tables(spec, ["metrics_reference"]),
        model_uri(spec.name, spec.model.name),
    )
    return [
        JobTask("build_training_set", (TRAINING_DATE_TASK,), _tables(spec, [spec.label.table])),
        JobTask("train", ("build_training_set",), train_writes),
    ]


def jobs_dir(cfg: AppConfig) -> Path:
    """Where the job entry files are: `airflow.jobs_dir`, else the project's jobs/ (`lakeloop
    init` writes them), else the lakeloop checkout's."""
    if cfg.airflow.jobs_dir is not None:
        return cfg.path(cfg.airflow.jobs_dir)
    own = cfg.project_root / "jobs"
    return own if own.is_dir() else Path(__file__).resolve().parents[3] / "jobs"


def job_args(pipeline: Pipeline, date: str, set_pairs: list[str]) -> list[str]:
    """The job's command line after the entry file: the spec file, the date (a template), the
    config environment and the same `--set` overrides the DAG was built with."""
    spec_ref = str(pipeline.source_file) if pipeline.source_file else pipeline.name
    args = ["--pipeline", spec_ref, "--date", date, "--env", pipeline.cfg.env]
    for pair in set_pairs:
        args += ["--set", pair]
    return args


def spark_master(cfg: AppConfig) -> str:
    return cfg.airflow.spark_master or cfg.spark.master
