"""A small client of the project's Airflow REST API (v2): trigger and wait for DAG runs, read
their task instances and the Asset events, create the Spark pool. Every failure is an
`AirflowError` naming the call and Airflow's answer."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import httpx

from lakeloop.config import AppConfig
from lakeloop.orchestration.server import AirflowError, base_url

log = logging.getLogger(__name__)

FINISHED = {"success", "failed"}


class AirflowApi:
    def __init__(self, cfg: AppConfig, timeout: float = 30.0):
        self.url = base_url(cfg)
        self.client = httpx.Client(base_url=f"{self.url}/api/v2", timeout=timeout)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        """One REST call. A call that meets a server error is tried again (up to 3 times, 2 s
        apart): on SQLite the api-server answers 500 ("Database error": the database is
        locked) now and then while the scheduler holds the write lock; the failed request
        committed nothing. `trigger` makes its retry idempotent (a fixed run id)."""
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                r = self.client.request(method, path, **kw)
            except httpx.HTTPError as e:
                if attempt < attempts:
                    time.sleep(2)
                    continue
                raise AirflowError(
                    f"Airflow at {self.url} did not answer {method} {path}: {e} "
                    "(is it up? `lakeloop airflow status`)"
                ) from None
            if r.status_code >= 500 and attempt < attempts:
                log.info("Airflow %s %s: HTTP %d, trying again", method, path, r.status_code)
                time.sleep(2)
                continue
            if r.status_code >= 400:
                raise AirflowError(f"Airflow {method} {path}: HTTP {r.status_code}: {r.text[:500]}")
            return r.json() if r.content else None
        raise AssertionError("unreachable")

    def ensure_pool(self, name: str, slots: int) -> None:
        body = {"name": name, "slots": slots, "description": "Spark JVMs of lakeloop tasks"}
        try:
            self._call("PATCH", f"/pools/{name}", json=body)
        except AirflowError as e:
            if "HTTP 404" not in str(e):
                raise
            self._call("POST", "/pools", json=body)

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._call("GET", f"/dags/{dag_id}")

    def trigger(
        self, dag_id: str, logical_date: dt.datetime, run_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": logical_date.isoformat(), "conf": {}}
        if run_id:
            body["dag_run_id"] = run_id
        try:
            return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)
        except AirflowError as e:
            if run_id and "HTTP 409" in str(e):  # a retried request whose first try went in
                return self.run(dag_id, run_id)
            raise

    def clear(self, dag_id: str, run_id: str) -> None:
        """Clear every task of a run: the scheduler runs it again."""
        self._call(
            "POST",
            f"/dags/{dag_id}/dagRuns/{run_id}/clear",
            json={"dry_run": False, "only_failed": False},
        )

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str]) -> None:
        """Clear only these tasks of a run (not their downstream): the scheduler runs them
        again and the run goes back to running until they finish."""
        self._call(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "task_ids": task_ids,
                "dag_run_id": run_id,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def create_backfill(self, dag_id: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        body = {
            "dag_id": dag_id,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        }
        return self._call("POST", "/backfills", json=body)

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return self._call("GET", f"/backfills/{backfill_id}")

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str, logical_date: dt.datetime | None = None) -> list[dict[str, Any]]:
        """The DAG's runs (the latest 100), or its run of one logical date."""
        params: dict[str, Any] = {"order_by": "-run_after", "limit": 100}
        if logical_date is not None:
            iso = logical_date.isoformat()
            params.update(logical_date_gte=iso, logical_date_lte=iso)
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return out["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's return value (its `return_value` XCom) in that run."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self._call("GET", path)["value"]

    def asset_events(self, uri: str) -> list[dict[str, Any]]:
        assets = self._call("GET", "/assets", params={"uri_pattern": uri})["assets"]
        ids = [a["id"] for a in assets if a["uri"] == uri]
        if not ids:
            return []
        out = self._call("GET", "/assets/events", params={"asset_id": ids[0], "limit": 100})
        return out["asset_events"]

    def wait(self, dag_id: str, run_id: str, timeout: float = 1800) -> dict[str, Any]:
        """Poll the run until it succeeded or failed (or `timeout` seconds passed)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.run(dag_id, run_id)
            if r["state"] in FINISHED:
                return r
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"{dag_id} run {run_id} still {r['state']} after {timeout:.0f} s; see the UI "
                    f"at {self.url}/dags/{dag_id}"
                )
            time.sleep(2)

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        return [
            t["task_id"]
            for t in self.task_instances(dag_id, run_id)
            if t["state"] in ("failed", "upstream_failed")
        ]
