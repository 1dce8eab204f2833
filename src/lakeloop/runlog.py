"""The run log: one Delta row per job run (succeeded or failed) with counts, Kafka offset
ranges, the Delta versions written and the duration."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from lakeloop.config import mask
from lakeloop.schemas import RUN_LOG
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    job: str
    pipeline: str
    run_date: dt.date | None
    env: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    input_counts: dict[str, int] = field(default_factory=dict)
    output_counts: dict[str, int] = field(default_factory=dict)
    kafka_offsets: list[dict[str, Any]] = field(default_factory=list)
    delta_versions: dict[str, list[int]] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    duration_s: float = 0.0

    def add_version(self, table: str, version: int | None) -> None:
        if version is not None:
            self.delta_versions.setdefault(table, []).append(version)

    def row(self, finished_at: dt.datetime) -> tuple:
        # aware datetimes: PySpark reads a naive one in the Python process's local time zone
        utc = lambda t: t.astimezone(dt.UTC)  # noqa: E731
        return (
            self.run_id,
            self.job,
            self.pipeline,
            self.run_date,
            self.env,
            utc(self.started_at),
            utc(finished_at),
            self.duration_s,
            self.status,
            self.input_counts,
            self.output_counts,
            [
                (o["topic"], o["partition"], o["start_offset"], o["end_offset"])
                for o in self.kafka_offsets
            ],
            self.delta_versions,
            {k: mask(v) for k, v in self.details.items()},
            mask(self.error) if self.error else None,
        )


@contextmanager
def recording(
    spark: SparkSession, pipeline: Pipeline, job: str, run_date: dt.date | None
) -> Iterator[RunRecord]:
    """Yield a RunRecord to fill; append it to the run log whether the body succeeds or fails."""
    rec = RunRecord(job=job, pipeline=pipeline.name, run_date=run_date, env=pipeline.cfg.env)
    t0 = time.monotonic()
    log.info("run %s: %s pipeline=%s date=%s", rec.run_id, job, pipeline.name, run_date)
    try:
        yield rec
        rec.status = "succeeded"
    except BaseException as e:
        rec.status = "failed"
        rec.error = f"{type(e).__name__}: {e}"[:4000]
        raise
    finally:
        rec.duration_s = round(time.monotonic() - t0, 3)
        try:
            append(spark, pipeline, rec)
        except Exception:  # the run's own outcome matters more; say so loudly
            log.exception("could not append run %s to the run log", rec.run_id)
        log.info(
            "run %s %s in %.1fs: in=%s out=%s versions=%s",
            rec.run_id,
            rec.status,
            rec.duration_s,
            rec.input_counts,
            rec.output_counts,
            rec.delta_versions,
        )


def append(spark: SparkSession, pipeline: Pipeline, rec: RunRecord) -> None:
    df = spark.createDataFrame([rec.row(dt.datetime.now(dt.UTC))], RUN_LOG)
    df.write.format("delta").mode("append").save(pipeline.table_path("run_log"))
