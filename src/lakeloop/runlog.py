"""The run log: an append-only Delta table of runs, one row per outcome of a run.

A run writes a marker file when it starts (its host and pid inside) under
`<lakehouse>/_runs/<pipeline>/<job>/<date>/`, and appends ONE row with its outcome (`succeeded` /
`failed`, with counts, Kafka offset ranges, the Delta versions written and the duration) when it
ends, then removes its marker. A run in progress, or killed, is its marker: `runs()` shows each
marker as a `running` row. The next run of the same job, pipeline and run date records an
`abandoned` row for each such run whose process is gone (same host, pid no longer alive; in the
same commit as its own outcome) and removes their markers; a run of another host or a live
process is never marked. `runs()` is the log as one row per run (its latest status): read that,
not the table.

Why append-only: blind appends never conflict in Delta (WriteSerializable), so runs of the same
job and date at once never fail or retry because of the log; an UPDATE/MERGE of a `running` row
would rewrite files and conflict with another run's UPDATE of the same (unpartitioned) table.
Why markers rather than a `running` row: the abandoned check is a folder listing (reading the
Delta log at every start cost ~13 s more per run, a cold scan; the listing milliseconds), and
each run costs one commit of the log, not two (a commit is ~0.5-1 s of a small job)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakeloop import storage
from lakeloop.config import mask
from lakeloop.delta_io import CONFLICTS
from lakeloop.schemas import RUN_LOG
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED, ABANDONED = "running", "succeeded", "failed", "abandoned"
# runs(): the row that wins per run_id. An outcome the run recorded itself beats `abandoned`
# (which another run inferred), and both beat `running`.
_RANK = {SUCCEEDED: 2, FAILED: 2, ABANDONED: 1, RUNNING: 0}
APPEND_ATTEMPTS = 3  # only the table's creation by two first runs at once can conflict


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
    status: str = RUNNING
    error: str | None = None
    duration_s: float = 0.0
    # earlier runs found abandoned at this run's start (marker, record): logged with its outcome
    abandoned_runs: list[tuple[str, RunRecord]] = field(default_factory=list, repr=False)

    def add_version(self, table: str, version: int | None) -> None:
        if version is not None and version not in self.delta_versions.get(table, []):
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


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with
    the pid it names one process, a reused pid has another. None where /proc is missing."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after "pid (comm)": [state (field 3), ppid (4), ...]; [] if absent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_identity() -> dict[str, str]:
    """What the `running` row records to tell later whether this process still runs."""
    me = {"host": socket.gethostname(), "pid": str(os.getpid())}
    started = _process_start(os.getpid())
    if started:
        me["pid_start"] = started
    return me


def process_alive(pid: int, pid_start: str | None = None) -> bool:
    """Whether process `pid` of this host still runs (and is the one that started at
    `pid_start` when given): a zombie or a reused pid is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if _stat(pid)[:1] == ["Z"]:
        return False
    now = _process_start(pid)
    return not (pid_start and now and now != pid_start)


@contextmanager
def recording(
    spark: SparkSession, pipeline: Pipeline, job: str, run_date: dt.date | None
) -> Iterator[RunRecord]:
    """Yield a RunRecord to fill. At the start, write this run's marker (see begin); at the
    end append its outcome, whether the body succeeds or fails (see finish)."""
    rec = RunRecord(job=job, pipeline=pipeline.name, run_date=run_date, env=pipeline.cfg.env)
    rec.details.update(process_identity())
    t0 = time.monotonic()
    log.info("run %s: %s pipeline=%s date=%s", rec.run_id, job, pipeline.name, run_date)
    try:  # the run matters more than its log: a failure here is logged, not raised
        begin(spark, pipeline, rec)
    except Exception:
        log.exception("could not record the start of run %s in the run log", rec.run_id)
    try:
        yield rec
        rec.status = SUCCEEDED
    except BaseException as e:
        rec.status = FAILED
        rec.error = f"{type(e).__name__}: {e}"[:4000]
        raise
    finally:
        rec.duration_s = round(time.monotonic() - t0, 3)
        try:
            finish(spark, pipeline, rec)
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


def marker_dir(pipeline: Pipeline, job: str, run_date: dt.date | None) -> str:
    """Where the runs in progress of a job/pipeline/date keep a marker file each."""
    day = run_date.isoformat() if run_date else "none"
    return pipeline.uri("_runs", pipeline.name, job, day)


def _marker(pipeline: Pipeline, rec: RunRecord) -> str:
    return f"{marker_dir(pipeline, rec.job, rec.run_date)}/{rec.run_id}.json"


def write_marker(spark: SparkSession, pipeline: Pipeline, rec: RunRecord) -> None:
    """The marker of a run in progress: what its `running` row says, to be found by the next
    run of its job/date without reading the run log."""
    text = {
        "run_id": rec.run_id,
        "job": rec.job,
        "pipeline": rec.pipeline,
        "run_date": rec.run_date.isoformat() if rec.run_date else None,
        "env": rec.env,
        "started_at": rec.started_at.astimezone(dt.UTC).isoformat(),
        "details": rec.details,
    }
    storage.create_exclusive(spark, _marker(pipeline, rec), json.dumps(text) + "\n")


def begin(spark: SparkSession, pipeline: Pipeline, rec: RunRecord) -> list[str]:
    """A run's start: its marker, and the earlier runs of its job/pipeline/date whose process
    is gone, kept on `rec` (their `abandoned` rows go into the run's one commit at its end).
    No commit. Returns the abandoned runs' ids."""
    rec.abandoned_runs = abandoned(spark, pipeline, rec)
    write_marker(spark, pipeline, rec)
    return [r.run_id for _, r in rec.abandoned_runs]


def finish(spark: SparkSession, pipeline: Pipeline, rec: RunRecord) -> None:
    """A run's end: one commit with its outcome row and the `abandoned` rows begin found, then
    their markers and its own removed (kept if the commit failed: the next run then records
    the run as abandoned rather than leave it running)."""
    now = dt.datetime.now(dt.UTC)
    _append_rows(spark, pipeline, [*(r.row(now) for _, r in rec.abandoned_runs), rec.row(now)])
    for uri, _ in rec.abandoned_runs:
        storage.delete(spark, uri)
    storage.delete(spark, _marker(pipeline, rec))


def _append_rows(spark: SparkSession, pipeline: Pipeline, rows: list[tuple]) -> None:
    df = spark.createDataFrame(rows, RUN_LOG)
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        try:
            df.write.format("delta").mode("append").save(pipeline.table_path("run_log"))
            return
        except CONFLICTS:  # two first runs creating the table at once
            if attempt == APPEND_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.1, 0.5) * attempt)


def latest(log_rows: DataFrame) -> DataFrame:
    """One row per run_id: its latest status (see _RANK), then the latest finished_at."""
    rank = F.coalesce(*[F.when(F.col("status") == s, F.lit(r)) for s, r in _RANK.items()], F.lit(0))
    w = Window.partitionBy("run_id").orderBy(rank.desc(), F.col("finished_at").desc())
    return log_rows.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n")


def runs(spark: SparkSession, pipeline: Pipeline) -> DataFrame:
    """The run log of `pipeline` as one row per run with its latest status (running,
    succeeded, failed, abandoned): the table's rows and a `running` row per marker of a run in
    progress; empty when nothing was logged yet."""
    path = pipeline.table_path("run_log")
    markers = spark.createDataFrame(
        [r.row(r.started_at) for r in in_progress(spark, pipeline)], RUN_LOG
    )
    if not DeltaTable.isDeltaTable(spark, path):
        return markers
    rows = spark.read.format("delta").load(path).where(F.col("pipeline") == pipeline.name)
    return latest(rows.unionByName(markers))


def in_progress(spark: SparkSession, pipeline: Pipeline) -> list[RunRecord]:
    """The runs of `pipeline` in progress per their markers (or killed and not yet marked
    abandoned), as `running` records. A folder listing, no Spark job."""
    pattern = pipeline.uri("_runs", pipeline.name, "*", "*", "*.json")
    return [_from_marker(m, RUNNING) for _, m in _read_markers(spark, pattern)]


def _read_markers(spark: SparkSession, pattern: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(uri, content) of each marker file matching the Hadoop glob `pattern` (none when its
    folder does not exist). A marker that cannot be read is skipped: being written, or removed
    by its run meanwhile (a live run, or one that just finished)."""
    for uri in storage.glob_files(spark, pattern):
        try:
            yield uri, json.loads(storage.read_text(spark, uri))
        except Exception:
            continue


def _from_marker(m: dict[str, Any], status: str, **details: str) -> RunRecord:
    return RunRecord(
        job=m["job"],
        pipeline=m["pipeline"],
        run_date=dt.date.fromisoformat(m["run_date"]) if m.get("run_date") else None,
        env=m["env"],
        run_id=m["run_id"],
        started_at=dt.datetime.fromisoformat(m["started_at"]),
        details={**{k: str(v) for k, v in (m.get("details") or {}).items()}, **details},
        status=status,
    )


def abandoned(
    spark: SparkSession, pipeline: Pipeline, rec: RunRecord
) -> list[tuple[str, RunRecord]]:
    """(marker, `abandoned` record) of each earlier run of rec's job, pipeline and run date
    still in progress per its marker while its process is gone from this host. A run of
    another host, or whose process lives, is never marked. No Spark job: a folder listing."""
    host, found = rec.details["host"], []
    for uri, m in _read_markers(spark, f"{marker_dir(pipeline, rec.job, rec.run_date)}/*.json"):
        d = {k: str(v) for k, v in (m.get("details") or {}).items()}
        if m.get("run_id") == rec.run_id or d.get("host") != host:
            continue  # this run, or another host's: not ours to judge
        if not d.get("pid", "").isdigit() or process_alive(int(d["pid"]), d.get("pid_start")):
            continue
        gone = _from_marker(m, ABANDONED, abandoned_by=rec.run_id)
        gone.error = (
            f"abandoned: its process (pid {d['pid']} on {host}) ended without recording "
            f"an outcome (killed?); found by run {rec.run_id} of the same job and date"
        )
        found.append((uri, gone))
        log.warning(
            "run %s (%s, date %s, pid %s on %s, started %s) is marked abandoned: its process "
            "is gone without recording an outcome",
            gone.run_id,
            gone.job,
            gone.run_date,
            d["pid"],
            host,
            m["started_at"],
        )
    return found
