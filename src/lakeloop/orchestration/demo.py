"""`lakeloop demo` / `make demo`: the whole lifecycle through the project's own Airflow.

Starts the local Kafka broker and Airflow (api-server + scheduler; the DAGs run only when
triggered, since the example's dates are far from the wall clock), generates the houses example
(lakeloop.demo_data), then triggers the lifecycle DAG for each day through the scheduler (REST,
waiting for each run). The first day has no champion: scoring is skipped and the retrain
trigger asks for the first model, so the training DAG runs on the `retrain` Asset; from then
on each day is scored and monitored, and when the monitor recommends retraining (drift in the
later days) the training DAG runs again by the same Asset. The demo waits for each training
run before the next day, so that the next day predicts with whatever the gate promoted. It
ends with a summary from Airflow's records and lakeloop's tables. Re-running it re-runs every
day (each write replaces its date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from lakeloop import demo_data
from lakeloop.config import AppConfig, load_config, parse_set_pairs
from lakeloop.jobs.common import JobError
from lakeloop.ml import tracking
from lakeloop.orchestration import plan, runs, server, summary, tables
from lakeloop.orchestration.api import AirflowApi
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

RUN_TIMEOUT_S = 3600.0
EVENT_WAIT_S = 120.0  # the scheduler starts an Asset-triggered run about 1 s after the event


def _table_rows(path: str) -> int | None:
    try:
        return tables.dataset(path).count_rows()
    except tables.TableMissing:
        return None


def wait_for_training(api: AirflowApi, dag_id: str, known: set[str]) -> dict | None:
    """The training run the latest retrain event started (a run id not in `known`), finished."""
    deadline = time.monotonic() + EVENT_WAIT_S
    while time.monotonic() < deadline:
        new = [r for r in api.runs(dag_id) if r["dag_run_id"] not in known]
        if new:
            return api.wait(dag_id, new[0]["dag_run_id"], timeout=RUN_TIMEOUT_S)
        time.sleep(2)
    return None


def run_airflow_demo(cfg: AppConfig, args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    data = demo_data.prepare(cfg, args)
    pipeline = data.pipeline
    set_pairs = [*args.set, "airflow.scheduled=false"]
    af_cfg = load_config(args.env, parse_set_pairs(set_pairs))
    server.up(af_cfg, set_pairs)
    api = AirflowApi(af_cfg)
    life, train = plan.lifecycle_dag_id(pipeline.name), plan.training_dag_id(pipeline.name)
    for day in data.days:
        known = {r["dag_run_id"] for r in api.runs(train)}
        done = runs.trigger_day(api, pipeline, day, RUN_TIMEOUT_S)
        log.info("%s", done.line())
        if done.state != "success":
            raise JobError(
                f"{life} for {day} {done.state} (tasks {', '.join(done.failed_tasks)}): see "
                f"{api.url}/dags/{life} or the task logs under {server.home(af_cfg)}/logs"
            )
        trigger = {t["task_id"]: t["state"] for t in api.task_instances(life, done.run_id)}
        if trigger.get(plan.RETRAIN_TASK) == "success":  # it emitted the retrain event
            trained = wait_for_training(api, train, known)
            if trained is None or trained["state"] != "success":
                raise JobError(
                    f"the retrain event of {day} started no successful {train} run: see "
                    f"{api.url}/dags/{train}"
                )
    out = [
        f"\nlakeloop demo through Airflow: pipeline {pipeline.name}, {len(data.days)} days "
        f"({data.days[0]}..{data.days[-1]}, drift after {data.drift_after}), "
        f"{time.monotonic() - t0:.0f} s"
    ]
    out.append(summary.render(api, pipeline))
    out.append(f"\n  tables (lakehouse {cfg.lakehouse_root}):")
    for key, name in pipeline.spec.tables.items():
        rows = _table_rows(pipeline.table_path(key))
        out.append(
            f"    {name:<30} {'-' if rows is None else rows:>7} rows  {pipeline.table_path(key)}"
        )
    jobs = summary.latest_job_runs(pipeline)
    report = jobs.get(("report", data.days[-1]))
    if report:
        out.append(f"  run report (HTML, opens offline): {report.details.get('report')}")
        out.append(f"  report index across dates: {report.details.get('index')}")
    validated = jobs.get(("validate", data.days[-1]))
    if validated and validated.details.get("summary"):
        out.append(f"  data quality summary of {data.days[-1]}: {validated.details['summary']}")
    out.append(
        f"  Airflow UI: {api.url} (no login: every user is admin on this local instance, "
        f"bound to {af_cfg.airflow.host}); DAGs {life} and {train}; stop it with "
        "`make airflow-down`"
    )
    out.append(
        f"  MLflow: {tracking.resolve_uri(cfg, cfg.mlflow.tracking_uri)} "
        "(browse: .venv/bin/mlflow ui --backend-store-uri <that URI>)"
    )
    out.append(f"  Kafka broker: {data.broker['bootstrap']} (stop it with `make kafka-down`)")
    if pipeline.spec.serving is not None:  # materialize ran in the lifecycle DAG
        out.append(serving_preview(cfg, pipeline, data.days[-1], args.set))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def serving_preview(cfg: AppConfig, pipeline: Pipeline, day: dt.date, set_pairs: list[str]) -> str:
    """`lakeloop serve` for a moment: the day's entities scored by key beside the batch."""
    from lakeloop.serving.preview import PreviewError, online_preview

    try:
        return online_preview(cfg, pipeline, day, set_pairs)
    except PreviewError as e:
        raise JobError(f"online scoring: {e}") from None
