"""A summary of DAG runs from Airflow's own records (state, duration, failed tasks, the retrain
events) and lakeloop's run log (rows per stage, quarantine, model version and score, drift
flags, decisions, the report's path). Tables are read with delta-rs: no JVM in the process that
prints it."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from lakeloop.orchestration import plan, tables
from lakeloop.orchestration.api import AirflowApi
from lakeloop.orchestration.runs import RunSummary
from lakeloop.orchestration.server import AirflowError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)


@dataclass
class JobRun:
    job: str
    run_date: dt.date | None
    status: str
    duration_s: float
    output: dict[str, int] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)


def latest_job_runs(pipeline: Pipeline) -> dict[tuple[str, dt.date | None], JobRun]:
    """The latest finished run of each (job, run date) in the run log."""
    try:
        data = tables.dataset(pipeline.table_path("run_log"))
    except tables.TableMissing:
        return {}
    cols = ["job", "run_date", "status", "finished_at", "duration_s", "output_counts", "details"]
    rows = data.to_table(columns=cols).to_pylist()
    rows = [r for r in rows if r["status"] in ("succeeded", "failed")]
    rows.sort(key=lambda r: r["finished_at"])
    out: dict[tuple[str, dt.date | None], JobRun] = {}
    for r in rows:
        out[(r["job"], r["run_date"])] = JobRun(
            r["job"],
            r["run_date"],
            r["status"],
            r["duration_s"],
            dict(r["output_counts"] or []),
            dict(r["details"] or []),
        )
    return out


def _plain(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if "." not in k}


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def lifecycle_lines(
    jobs: dict[tuple[str, dt.date | None], JobRun], day: dt.date, pipeline: Pipeline
) -> list[str]:
    """What the day's jobs did, one indented line per stage that ran."""
    lines = []

    def get(job: str) -> JobRun | None:
        return jobs.get((job, day))

    ingest: dict[str, int] = {}
    malformed = 0
    for job in ("ingest_files", "ingest_kafka"):
        r = get(job)
        if r:
            ingest.update(_plain(r.output))
            malformed += sum(v for k, v in r.output.items() if k.endswith(".malformed"))
    if ingest:
        lines.append(f"ingest: {_fmt(ingest)} ({malformed} malformed rows kept with reason)")
    v = get("validate")
    if v:
        silver = {k: n for k, n in v.output.items() if not k.startswith("quarantine")}
        quarantine = sum(n for k, n in v.output.items() if k.startswith("quarantine"))
        lines.append(f"validate: {_fmt(silver)}; quarantined {quarantine}")
    f = get("build_features")
    if f:
        lines.append(f"features: {_fmt(_plain(f.output))}")
    p = get("predict")
    if p:
        lines.append(
            f"predict: {_fmt(_plain(p.output))} by {p.details.get('model')} "
            f"v{p.details.get('champion_version')}"
            + (
                f" (challenger v{p.details['challenger_version']} in shadow)"
                if p.details.get("challenger_version")
                else ""
            )
        )
    else:
        lines.append("predict: skipped (no champion yet)")
    m = get("monitor")
    if m:
        d = m.details
        verdict = "RETRAIN" if d.get("retrain_recommended") == "true" else "no retrain"
        cooling = " (in cooldown)" if d.get("in_cooldown") == "true" else ""
        lines.append(
            f"monitor: drifted [{d.get('drifted') or '-'}], prediction PSI "
            f"{d.get('prediction_psi', '-')}: {verdict}{cooling} (rule {d.get('rule')})"
        )
    r = get("report")
    if r:
        lines.append(f"report: {r.details.get('report')}")
    return lines


def training_lines(jobs: dict[tuple[str, dt.date | None], JobRun], day: dt.date) -> list[str]:
    t = jobs.get(("train", day))
    ts = jobs.get(("build_training_set", day))
    lines = []
    if ts:
        lines.append(f"training set: {ts.output.get('training_set', 0)} rows")
    if t:
        d = t.details
        lines.append(
            f"model {d.get('model')} v{d.get('model_version')}: {d.get('decision')}; "
            f"{d.get('metric')} {d.get('score')} on {d.get('test_window')} ({d.get('reason')})"
        )
    return lines


def training_date_of(api: AirflowApi, run: dict[str, Any]) -> dt.date | None:
    try:
        value = api.xcom(run["dag_id"], run["dag_run_id"], plan.TRAINING_DATE_TASK)
    except Exception:  # a run that failed before it chose its date
        return None
    if isinstance(value, str):
        value = json.loads(value) if value.startswith('"') else value
    return dt.date.fromisoformat(value) if value else None


def render(api: AirflowApi, pipeline: Pipeline) -> str:
    """Every run of the pipeline's two DAGs in time order, with what its jobs did."""
    jobs = latest_job_runs(pipeline)
    life = plan.lifecycle_dag_id(pipeline.name)
    train = plan.training_dag_id(pipeline.name)
    runs = [*api.runs(life), *api.runs(train)]
    runs.sort(key=lambda r: r.get("start_date") or r.get("run_after") or "")
    try:
        listed = api.asset_events(plan.retrain_uri(pipeline.name))
    except AirflowError as e:  # Airflow 3.3 answers 500 while an event's run is queued
        log.warning("the retrain events could not be listed: %s", e)
        listed = []
    events = {e.get("source_run_id"): e.get("extra") or {} for e in listed}
    out = [
        f"{'DAG':<24} {'logical date':<20} {'run type':<16} {'state':<8} {'took':>8}",
    ]
    for run in runs:
        s = RunSummary.of(api, run)
        out.append(s.line())
        if run.get("run_type") == "scheduled" and all(
            t["state"] == "skipped" for t in api.task_instances(run["dag_id"], run["dag_run_id"])
        ):
            out.append("    the scheduler's own run: skipped (airflow.scheduled: false)")
            continue
        if run["dag_id"] == life and run.get("logical_date"):
            local = plan.local_day(run["logical_date"], pipeline.spec.timezone)
            lines = lifecycle_lines(jobs, local, pipeline)
            extra = events.get(run["dag_run_id"])
            if extra:
                lines.append(f"retrain event for {extra.get('date')}: {extra.get('reason')}")
        else:
            day = training_date_of(api, run)
            lines = [f"trained as of {day}"] + (training_lines(jobs, day) if day else [])
        out += [f"    {line}" for line in lines]
    return "\n".join(out)
