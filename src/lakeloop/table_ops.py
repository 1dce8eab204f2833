"""Rollback and retention for a pipeline's Delta tables: history (each version with the run that
wrote it), restore (Delta RESTORE, recorded in the run log) and vacuum (refusing retentions that
would break time travel, including the training sets of registered models)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.config import ConfigError
from lakeloop.jobs.common import JobError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

MIN_RETAIN_HOURS = 168.0  # Delta's default deletedFileRetentionDuration: 7 days
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# VACUUM lists the table's folders with this many tasks; Spark's default, 10000, makes a vacuum
# of a small table take minutes on a few cores (10000 tasks of nothing)
LISTING = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
SPARK_DEFAULT_LISTING = "10000"
# operationMetrics worth a glance, in display order, with short labels
METRICS = (
    ("numOutputRows", "rows"),
    ("numTargetRowsInserted", "inserted"),
    ("numTargetRowsUpdated", "updated"),
    ("numTargetRowsDeleted", "deleted"),
    ("numDeletedRows", "deleted"),
    ("numFiles", "files"),
    ("numAddedFiles", "+files"),
    ("numRemovedFiles", "-files"),
    ("numRestoredFiles", "restored files"),
    ("numFilesToDelete", "files to delete"),
    ("numDeletedFiles", "deleted files"),
)


class Refused(JobError):
    """A request that is unsafe without `--force`; nothing was changed (exit code 2)."""


@dataclass(frozen=True)
class Table:
    key: str
    name: str
    path: str


@dataclass(frozen=True)
class Commit:
    """One Delta version, with the lakeloop run that wrote it when the run log knows it."""

    version: int
    timestamp: dt.datetime
    operation: str
    metrics: dict[str, str]
    run_id: str | None = None
    job: str | None = None
    run_date: dt.date | None = None
    status: str | None = None

    @property
    def summary(self) -> str:
        seen = {}
        for k, label in METRICS:
            if k in self.metrics and label not in seen:
                seen[label] = self.metrics[k]
        return " ".join(f"{label}={v}" for label, v in seen.items())


@dataclass(frozen=True)
class AtRisk:
    """A registered model version whose training set a vacuum would make unreadable."""

    model: str
    version: int
    delta_version: int

    def __str__(self) -> str:
        return f"{self.model} v{self.version} (training set version {self.delta_version})"


@dataclass
class VacuumResult:
    table: Table
    retain_hours: float | None
    files: list[str]
    at_risk: list[AtRisk] = field(default_factory=list)
    run_id: str | None = None  # None for a dry run


def resolve(pipeline: Pipeline, key: str) -> Table:
    """The table of spec key `key`; an unknown key is a ConfigError listing the keys."""
    if key not in pipeline.spec.tables:
        keys = ", ".join(sorted(pipeline.spec.tables))
        raise ConfigError(f"pipeline {pipeline.name} has no table {key!r}; tables: {keys}")
    return Table(key, pipeline.spec.table(key), pipeline.table_path(key))


def _delta(spark: SparkSession, t: Table) -> DeltaTable:
    if not DeltaTable.isDeltaTable(spark, t.path):
        raise JobError(f"{t.key} ({t.name}): no Delta table at {t.path}; has its job run yet?")
    return DeltaTable.forPath(spark, t.path)


@contextmanager
def _conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a session conf for the body only, restoring what was there before."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _utc(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1e6, dt.UTC)


def _runs(
    spark: SparkSession, pipeline: Pipeline, t: Table, ids: set[str], versions: set[int]
) -> tuple[dict[str, Row], dict[int, Row]]:
    """Run-log rows that wrote one of `versions` of `t` (by run id, or by delta_versions)."""
    path = pipeline.table_path("run_log")
    if delta_io.version(spark, path) is None:
        return {}, {}
    written = F.coalesce(F.col("delta_versions")[t.name], F.array().cast("array<bigint>"))
    rows = (
        runlog.runs(spark, pipeline)
        .where(
            F.col("run_id").isin(list(ids))
            | F.arrays_overlap(written, F.array(*[F.lit(v) for v in versions]))
        )
        .select("run_id", "job", "run_date", "status", written.alias("written"))
        .collect()
    )
    by_version = {v: r for r in rows for v in r["written"] if v in versions}
    return {r["run_id"]: r for r in rows}, by_version


def history(spark: SparkSession, pipeline: Pipeline, key: str, limit: int | None) -> list[Commit]:
    """The table's versions, newest first, each joined to the run that wrote it: the run id
    Delta holds in `userMetadata`, else the run-log row listing the version in delta_versions."""
    t = resolve(pipeline, key)
    hist = (
        _delta(spark, t)
        .history(limit)
        .select(
            "version",
            F.unix_micros("timestamp").alias("ts"),
            "operation",
            "operationMetrics",
            "userMetadata",
        )
    )
    commits = hist.collect()
    ids = {c["userMetadata"] for c in commits if c["userMetadata"]}
    by_run, by_version = _runs(spark, pipeline, t, ids, {c["version"] for c in commits})
    out = []
    for c in commits:
        run = by_run.get(c["userMetadata"]) or by_version.get(c["version"])
        out.append(
            Commit(
                version=c["version"],
                timestamp=_utc(c["ts"]),
                operation=c["operation"],
                metrics=dict(c["operationMetrics"] or {}),
                run_id=run["run_id"] if run else c["userMetadata"],
                job=run["job"] if run else None,
                run_date=run["run_date"] if run else None,
                status=run["status"] if run else None,
            )
        )
    return out


def _version_at(commits: list[Commit], ts: dt.datetime) -> int:
    before = [c.version for c in commits if c.timestamp <= ts]
    if not before:
        first = min(commits, key=lambda c: c.version)
        raise JobError(
            f"{ts.isoformat()} is before the table's earliest version "
            f"({first.version}, {first.timestamp.isoformat()})"
        )
    return max(before)


def restore(
    spark: SparkSession,
    pipeline: Pipeline,
    key: str,
    version: int | None = None,
    timestamp: dt.datetime | None = None,
) -> runlog.RunRecord:
    """Delta RESTORE of table `key` to `version` (or the version current at `timestamp`),
    recorded in the run log as job `restore_table` with the version it wrote."""
    t = resolve(pipeline, key)
    table = _delta(spark, t)
    commits = history(spark, pipeline, key, None)
    current = commits[0].version
    if timestamp is not None:
        version = _version_at(commits, timestamp.astimezone(dt.UTC))
    if version not in {c.version for c in commits}:
        raise JobError(
            f"{t.name} has no version {version}: versions "
            f"{commits[-1].version}..{current} are in its log"
        )
    with runlog.recording(spark, pipeline, "restore_table", None) as rec:
        rec.details.update(table=t.name, from_version=str(current), to_version=str(version))
        if timestamp is not None:
            rec.details["timestamp"] = timestamp.isoformat()
        try:
            with _conf(spark, USER_METADATA, rec.run_id):
                metrics = table.restoreToVersion(version).first().asDict()
        except (PySparkException, Py4JJavaError) as e:
            raise JobError(f"restore of {t.name} to version {version} failed: {_first(e)}") from e
        rec.add_version(t.name, delta_io.version(spark, t.path))
        rec.output_counts.update({k: int(v) for k, v in metrics.items() if v is not None})
        log.info("%s restored from version %s to %s", t.name, current, version)
    return rec


def _first(e: Exception) -> str:
    text = str(e.java_exception) if isinstance(e, Py4JJavaError) else str(e)
    return text.strip().splitlines()[0][:1000]


def _local(p: str) -> str:
    return str(Path(unquote(urlparse(p).path if p.startswith("file:") else p)))


def _listing(spark: SparkSession) -> AbstractContextManager[None]:
    """The listing parallelism for a vacuum: the cluster's cores unless set explicitly."""
    value = spark.conf.get(LISTING, SPARK_DEFAULT_LISTING)
    if value == SPARK_DEFAULT_LISTING:
        value = str(spark.sparkContext.defaultParallelism)
    return _conf(spark, LISTING, value)


def _dry_run(spark: SparkSession, t: Table, retain_hours: float | None) -> list[str]:
    """The files `VACUUM ... RETAIN retain_hours HOURS` would delete (Delta's own DRY RUN)."""
    retain = "" if retain_hours is None else f" RETAIN {retain_hours} HOURS"
    sql = f"VACUUM delta.`{t.path.replace('`', '``')}`{retain} DRY RUN"
    with _listing(spark), _conf(spark, RETENTION_CHECK, "false"):  # a dry run deletes nothing
        return sorted(_local(r["path"]) for r in spark.sql(sql).collect())


def _files_of(spark: SparkSession, t: Table, version: int) -> set[str]:
    """The data files of `version`; none when it is unreadable already (nothing left to lose)."""
    try:
        df = delta_io.read_version(spark, t.path, version)
        return {_local(f) for f in df.inputFiles()}
    except (PySparkException, Py4JJavaError) as e:
        log.warning("%s version %s is unreadable already: %s", t.name, version, _first(e))
        return set()


def models_at_risk(
    spark: SparkSession, pipeline: Pipeline, t: Table, doomed: set[str]
) -> list[AtRisk]:
    """Registered versions of `model.name` trained on `t` whose training-set Delta version
    reads a file in `doomed`: exactly the versions `training-set --as-of` could not rebuild."""
    if pipeline.spec.model is None or not doomed:
        return []
    from lakeloop.ml import tracking  # MLflow only when a model can be affected

    client = tracking.configure(pipeline.cfg)
    name = pipeline.spec.model.name
    files: dict[int, set[str]] = {}
    out = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        ref = tracking.ModelRef(mv.name, int(mv.version), mv.run_id)
        try:
            lin = tracking.lineage(client, ref)
        except tracking.RegistryError as e:
            log.warning("skipping %s v%s: %s", name, ref.version, e)
            continue
        if _local(lin.path) != _local(t.path):
            continue
        if lin.delta_version not in files:
            files[lin.delta_version] = _files_of(spark, t, lin.delta_version)
        if files[lin.delta_version] & doomed:
            out.append(AtRisk(name, ref.version, lin.delta_version))
    return sorted(out, key=lambda a: a.version)


def vacuum(
    spark: SparkSession,
    pipeline: Pipeline,
    key: str,
    retain_hours: float | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> VacuumResult:
    """VACUUM table `key`. Without `force` it refuses a retention under 7 days and one that
    would delete a file of a registered model's training set (found with Delta's own DRY RUN,
    so exactly the files the vacuum would delete). A dry run only lists the files and the
    models at risk; a real vacuum is recorded in the run log as `vacuum_table`."""
    t = resolve(pipeline, key)
    _delta(spark, t)
    files = _dry_run(spark, t, retain_hours)
    result = VacuumResult(t, retain_hours, files, models_at_risk(spark, pipeline, t, set(files)))
    reasons = []
    if retain_hours is not None and retain_hours < MIN_RETAIN_HOURS:
        reasons.append(
            f"a retention of {retain_hours:g} h is under Delta's 7 days ({MIN_RETAIN_HOURS:g} h) "
            "and breaks time travel to older versions"
        )
    if result.at_risk:
        reasons.append(
            f"it would delete the training set of {', '.join(map(str, result.at_risk))} "
            "(`lakeloop training-set --as-of` could no longer rebuild it)"
        )
    if reasons and not (force or dry_run):
        raise Refused(
            f"vacuum {t.name} refused: {'; '.join(reasons)}. Pass --force to vacuum anyway"
        )
    if dry_run:
        return result
    with runlog.recording(spark, pipeline, "vacuum_table", None) as rec:
        rec.details.update(
            table=t.name,
            retain_hours="table default" if retain_hours is None else f"{retain_hours:g}",
            force=str(force).lower(),
            models_at_risk=", ".join(str(a) for a in result.at_risk),
        )
        before = delta_io.version(spark, t.path)
        unchecked = _conf(spark, RETENTION_CHECK, "false") if force else nullcontext()
        with unchecked, _listing(spark), _conf(spark, USER_METADATA, rec.run_id):
            DeltaTable.forPath(spark, t.path).vacuum(retain_hours)
        after = delta_io.version(spark, t.path)
        for v in range(before + 1, after + 1):
            rec.add_version(t.name, v)
        rec.output_counts["files_deleted"] = len(files)
        result.run_id = rec.run_id
    if result.at_risk:
        log.warning("vacuum %s (--force) broke: %s", t.name, ", ".join(map(str, result.at_risk)))
    return result
