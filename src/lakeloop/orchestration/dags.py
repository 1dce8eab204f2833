"""The DAG factory: Airflow DAGs for every spec in the project's pipelines folder.

Per pipeline, `<name>_lifecycle` (on the spec's `schedule.cron`, a data interval per day in
the spec's time zone): ingest_files ∥ ingest_kafka → validate → build_features → predict →
monitor → report → retrain_trigger; and `<name>_training` (on the pipeline's `retrain` Asset,
and `schedule.training.cron` when set): training_date → build_training_set → train.

Each job is a `SparkSubmitOperator` of its entry file (`jobs/<job>.py`) with the run's date, the
spec file, the config environment and `--set` overrides as arguments; the connection
(`airflow.spark_conn_id`) says where Spark runs. Each task retries with exponential backoff, has
a time limit, and takes a slot of the Spark pool. Each job declares the Delta tables it writes as
Assets (`lakeloop://<pipeline>/<schema.table>`). `retrain_trigger` emits the `retrain` Asset
only when the monitor's decision for the date says so.

Parsing builds DAG objects only: the config and the spec files are read, no table, no Spark.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    TriggerRule,
)

from lakeloop.config import AppConfig, ConfigError, env_set_pairs, load_config
from lakeloop.orchestration import plan
from lakeloop.spec import Pipeline, load_pipeline

log = logging.getLogger(__name__)

TRAINING_DATE = "{{ ti.xcom_pull(task_ids='" + plan.TRAINING_DATE_TASK + "') }}"


def local_ds(logical_date: Any, timezone: str) -> str:
    """The run's day in the pipeline's zone (`{{ ds }}` is the UTC date: a day early east of
    UTC). A run without a logical date (a bare manual trigger) has no day to process."""
    if logical_date is None:
        raise ValueError("this DAG processes one day per run: trigger it with a logical date")
    return plan.local_day(logical_date, timezone).isoformat()


def _asset(uri: str) -> Asset:
    return Asset(name=uri, uri=uri)


def _default_args(pipeline: Pipeline) -> dict[str, Any]:
    s = pipeline.spec.schedule
    return {
        "owner": s.owner,
        "retries": s.retries,
        "retry_delay": dt.timedelta(seconds=s.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(seconds=s.max_retry_delay_s),
        "execution_timeout": dt.timedelta(minutes=s.timeout_min),
    }


def _spark_task(
    pipeline: Pipeline, task: plan.JobTask, date: str, set_pairs: list[str]
) -> SparkSubmitOperator:
    cfg = pipeline.cfg
    return SparkSubmitOperator(
        task_id=task.job,
        application=str(plan.jobs_dir(cfg) / f"{task.job}.py"),
        application_args=plan.job_args(pipeline, date, set_pairs),
        conn_id=cfg.airflow.spark_conn_id,
        name=f"lakeloop-{task.job}-{pipeline.name}",
        driver_memory=cfg.spark.driver_memory,
        # client mode: the driver JVM is spark-submit's own, so its options go on the command
        conf=(
            {"spark.driver.extraJavaOptions": cfg.spark.driver_java_options}
            if cfg.spark.driver_java_options
            else None
        ),
        env_vars={"LAKELOOP_HOME": str(cfg.project_root)},
        pool=cfg.airflow.pool,
        execution_timeout=pipeline.spec.schedule.timeout(task.job),
        outlets=[_asset(u) for u in task.writes],
        doc_md=f"`spark-submit jobs/{task.job}.py` for the run's day; writes "
        + (", ".join(f"`{u}`" for u in task.writes) or "no table"),
    )


def _chain(tasks: dict[str, Any], job_tasks: list[plan.JobTask]) -> None:
    for t in job_tasks:
        for up in t.upstream:
            tasks[up] >> tasks[t.job]


def lifecycle_dag(pipeline: Pipeline, set_pairs: list[str]) -> DAG | None:
    spec = pipeline.spec
    jobs = plan.lifecycle_tasks(spec)
    if not jobs:
        return None
    s = spec.schedule
    date = "{{ local_ds(logical_date, '" + spec.timezone + "') }}"
    with DAG(
        dag_id=plan.lifecycle_dag_id(spec.name),
        description=f"{spec.name}: one day through ingest, validate, features, predict, monitor",
        schedule=CronDataIntervalTimetable(s.cron, timezone=spec.timezone),
        start_date=plan.day_start(s.start_date, spec.timezone),
        catchup=s.catchup,
        max_active_runs=s.max_active_runs,
        default_args=_default_args(pipeline),
        user_defined_macros={"local_ds": local_ds},
        tags=["lakeloop", spec.name, "lifecycle", *s.tags],
        doc_md=spec.description or None,
    ) as dag:
        common = {"spec_ref": str(pipeline.source_file), "env": pipeline.cfg.env}
        common["set_pairs"] = set_pairs
        tasks: dict[str, Any] = {}
        for t in jobs:
            if t.spark:
                tasks[t.job] = _spark_task(pipeline, t, date, set_pairs)
            else:  # champion_check
                tasks[t.job] = PythonOperator(
                    task_id=t.job,
                    python_callable=_champion_check,
                    op_kwargs=common,
                    execution_timeout=dt.timedelta(minutes=5),
                    doc_md="skips scoring while the model has no champion",
                )
        _chain(tasks, jobs)
        if not pipeline.cfg.airflow.scheduled:  # the scheduler's own runs do nothing here
            guard = PythonOperator(
                task_id=plan.GUARD_TASK,
                python_callable=_triggered_only,
                execution_timeout=dt.timedelta(minutes=5),
                doc_md="skips the runs the scheduler creates on its own (airflow.scheduled: "
                "false); triggered runs, backfills and Asset runs go on",
            )
            for t in jobs:
                if not t.upstream:
                    guard >> tasks[t.job]
        if "monitor" in tasks:
            retrain = plan.retrain_uri(spec.name)
            trigger = PythonOperator(
                task_id=plan.RETRAIN_TASK,
                python_callable=_retrain_trigger,
                op_kwargs={**common, "date": date, "retrain_uri": retrain},
                outlets=[_asset(retrain)],
                # runs after a skipped scoring too (no champion yet: build_features succeeded),
                # not after a failure, nor when everything was skipped
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
                execution_timeout=dt.timedelta(minutes=5),
                doc_md="emits the `retrain` Asset when the monitor's decision for the day "
                "says `retrain_recommended` (its reason as the event's extra); skipped otherwise",
            )
            [tasks["build_features"], tasks["report"]] >> trigger
    return dag


def training_dag(pipeline: Pipeline, set_pairs: list[str]) -> DAG | None:
    spec = pipeline.spec
    jobs = plan.training_tasks(spec)
    if not jobs:
        return None
    s = spec.schedule
    retrain = _asset(plan.retrain_uri(spec.name))
    schedule: Any = [retrain]
    if s.training.cron and pipeline.cfg.airflow.scheduled:  # (a cron-only run would be skipped)
        schedule = AssetOrTimeSchedule(
            timetable=CronDataIntervalTimetable(s.training.cron, timezone=spec.timezone),
            assets=retrain,
        )
    with DAG(
        dag_id=plan.training_dag_id(spec.name),
        description=f"{spec.name}: training set as of the day, train, champion gate",
        schedule=schedule,
        start_date=plan.day_start(s.start_date, spec.timezone),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(pipeline),
        tags=["lakeloop", spec.name, "training", *s.tags],
    ) as dag:
        tasks: dict[str, Any] = {
            plan.TRAINING_DATE_TASK: PythonOperator(
                task_id=plan.TRAINING_DATE_TASK,
                python_callable=_training_date,
                op_kwargs={"timezone": spec.timezone},
                execution_timeout=dt.timedelta(minutes=5),
                doc_md="the day to train as of: the retrain event's date, else the run's day",
            )
        }
        tasks.update({t.job: _spark_task(pipeline, t, TRAINING_DATE, set_pairs) for t in jobs})
        _chain(tasks, jobs)
    return dag


def _retrain_trigger(**kwargs: Any) -> Any:
    from lakeloop.orchestration.tasks import retrain_trigger

    return retrain_trigger(**kwargs)


def _triggered_only(dag_run: Any = None, **_: Any) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    if dag_run is not None and str(dag_run.run_type).lower().endswith("scheduled"):
        raise AirflowSkipException(
            "this Airflow runs the DAGs only when triggered (airflow.scheduled: false): the run "
            "the scheduler created on its own does nothing"
        )


def _champion_check(**kwargs: Any) -> Any:
    from lakeloop.orchestration.tasks import champion_check

    return champion_check(**kwargs)


def _training_date(**kwargs: Any) -> Any:
    from lakeloop.orchestration.tasks import training_date

    return training_date(**kwargs)


def spec_files(cfg: AppConfig) -> list[Path]:
    return sorted(cfg.path(cfg.pipelines_dir).glob("*.yaml"))


def build_all(cfg: AppConfig | None = None, set_pairs: list[str] | None = None) -> dict[str, DAG]:
    """Every DAG of every spec in the project's pipelines folder, by dag_id. A spec that does
    not validate raises (Airflow shows it as the DAG file's import error, naming the key)."""
    if set_pairs is None:
        set_pairs = env_set_pairs()
    cfg = cfg or load_config()
    dags: dict[str, DAG] = {}
    errors = []
    for path in spec_files(cfg):
        try:
            pipeline = load_pipeline(cfg, str(path))
        except ConfigError as e:
            errors.append(str(e))
            continue
        for dag in (lifecycle_dag(pipeline, set_pairs), training_dag(pipeline, set_pairs)):
            if dag is not None:
                dags[dag.dag_id] = dag
    if errors:
        raise ConfigError("; ".join(errors))
    return dags
