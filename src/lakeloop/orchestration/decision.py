"""The monitor's retrain decision of one date, read from the decisions Delta table without a
JVM (orchestration.tables: delta-rs + pyarrow): the lifecycle DAG's last task reads it in well under a second, where a Spark
session would cost a JVM start and a pool slot. Any URI `orchestration.tables` reads (a local
path; s3://, abfss://, gs:// untested here)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow.compute as pc

from lakeloop.orchestration import tables
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)


class DecisionMissing(LookupError):
    """No decision row for the date: the monitor did not run (or failed) for it."""


@dataclass(frozen=True)
class Decision:
    run_date: dt.date
    recommended: bool
    rule: str
    in_cooldown: bool
    reason: str
    model_name: str
    model_version: str
    run_id: str

    def extra(self) -> dict[str, str]:
        """The retrain Asset event's extra: what the training run reads its date from."""
        return {
            "date": self.run_date.isoformat(),
            "reason": self.reason,
            "rule": self.rule,
            "model": self.model_name,
            "champion_version": self.model_version,
            "monitor_run_id": self.run_id,
        }


def read(pipeline: Pipeline, date: dt.date) -> Decision:
    """The decision row the monitor wrote for `date` (replaced per date, so at most one)."""
    key = "metrics_decisions"
    path = pipeline.table_path(key)
    try:
        data = tables.dataset(path)
    except tables.TableMissing:
        raise DecisionMissing(
            f"{pipeline.spec.table(key)} does not exist at {path}: the monitor has not run yet"
        ) from None
    rows = data.to_table(filter=pc.field("run_date") == date).to_pylist()
    if not rows:
        raise DecisionMissing(
            f"{pipeline.spec.table(key)} has no decision for {date} (version "
            f"{tables.version(path)}): run the monitor for {date} first"
        )
    if len(rows) > 1:  # the monitor replaces its date: never expected
        raise DecisionMissing(f"{pipeline.spec.table(key)} has {len(rows)} decisions for {date}")
    r = rows[0]
    return Decision(
        run_date=r["run_date"],
        recommended=bool(r["retrain_recommended"]),
        rule=r["rule"] or "",
        in_cooldown=bool(r["in_cooldown"]),
        reason=r["reason"] or "",
        model_name=r["model_name"] or "",
        model_version=str(r["model_version"] or ""),
        run_id=r["run_id"] or "",
    )
