"""Running the DAGs through the project's Airflow: one date (`trigger_day`), a date range
(`backfill`, via `airflow backfill create`: the scheduler runs the created runs), and a
readable line per run."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from lakeloop.config import AppConfig, ConfigError
from lakeloop.orchestration import plan, server
from lakeloop.orchestration.api import AirflowApi
from lakeloop.orchestration.server import AirflowError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)


def day_start(pipeline: Pipeline, day: dt.date) -> dt.datetime:
    """Midnight of `day` in the pipeline's zone: the logical date of that day's run."""
    return plan.day_start(day, pipeline.spec.timezone)


def _ts(v: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None


@dataclass(frozen=True)
class RunSummary:
    dag_id: str
    run_id: str
    state: str
    logical_date: str
    run_type: str
    seconds: float | None
    failed_tasks: tuple[str, ...]

    @classmethod
    def of(cls, api: AirflowApi, run: dict[str, Any]) -> RunSummary:
        start, end = _ts(run.get("start_date")), _ts(run.get("end_date"))
        failed = ()
        if run["state"] == "failed":
            failed = tuple(api.failed_tasks(run["dag_id"], run["dag_run_id"]))
        return cls(
            run["dag_id"],
            run["dag_run_id"],
            run["state"],
            (run.get("logical_date") or "")[:19],
            run.get("run_type", ""),
            (end - start).total_seconds() if start and end else None,
            failed,
        )

    def line(self) -> str:
        took = f"{self.seconds:6.0f} s" if self.seconds is not None else "      -"
        failed = f"  failed: {', '.join(self.failed_tasks)}" if self.failed_tasks else ""
        return (
            f"{self.dag_id:<24} {self.logical_date or '(asset-triggered)':<20} "
            f"{self.run_type:<16} {self.state:<8} {took}{failed}"
        )


def require_up(cfg: AppConfig) -> AirflowApi:
    st = server.status(cfg)
    if not st["running"]:
        raise AirflowError(
            f"Airflow is not running at {st['url']} (api-server {st['api_server']}): start it "
            "with `lakeloop airflow up` (or `make airflow-up`)"
        )
    return AirflowApi(cfg)


def _run_of(api: AirflowApi, dag_id: str, logical: dt.datetime) -> dict[str, Any] | None:
    runs = api.runs(dag_id, logical_date=logical)
    return next((r for r in runs if _ts(r.get("logical_date")) == logical), None)


def trigger_day(api: AirflowApi, pipeline: Pipeline, day: dt.date, timeout: float) -> RunSummary:
    """Run the lifecycle DAG for `day` through the scheduler and wait for it. A date that has
    a run already is run again: its run is cleared (Airflow keeps one run per logical date)."""
    dag_id = plan.lifecycle_dag_id(pipeline.name)
    logical = day_start(pipeline, day)
    existing = _run_of(api, dag_id, logical)
    if existing is None:
        run_id = api.trigger(dag_id, logical, run_id=f"lakeloop__{day.isoformat()}")["dag_run_id"]
        log.info("triggered %s for %s (%s)", dag_id, day, run_id)
    else:
        run_id = existing["dag_run_id"]
        api.clear(dag_id, run_id)
        log.info("re-running %s for %s (cleared %s)", dag_id, day, run_id)
    return RunSummary.of(api, api.wait(dag_id, run_id, timeout=timeout))


def backfill(
    cfg: AppConfig, pipeline: Pipeline, start: dt.date, end: dt.date, wait: bool, timeout: float
) -> list[RunSummary]:
    """A backfill of the lifecycle DAG over [start, end] (what `airflow backfill create` makes,
    through the REST API so that its id can be followed): the scheduler runs one run per date
    in order; dates that ran before are run again (every write replaces its date)."""
    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    api = require_up(cfg)
    dag_id = plan.lifecycle_dag_id(pipeline.name)
    b = api.create_backfill(dag_id, day_start(pipeline, start), day_start(pipeline, end))
    log.info("backfill %s of %s: %s .. %s", b["id"], dag_id, start, end)
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    deadline = time.monotonic() + timeout
    while wait and not api.backfill(b["id"]).get("completed_at"):
        if time.monotonic() > deadline:
            raise AirflowError(f"backfill {b['id']} of {dag_id} not done after {timeout:.0f} s")
        time.sleep(3)
    runs = [_run_of(api, dag_id, day_start(pipeline, d)) for d in days]
    return [RunSummary.of(api, r) for r in runs if r is not None]
