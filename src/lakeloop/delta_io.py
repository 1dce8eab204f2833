"""Small Delta helpers used by jobs (I/O lives here and in jobs, never in transforms)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence

from delta import exceptions as dx  # importing it makes PySpark raise Delta's conflict classes
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import storage
from lakeloop.jobs.common import JobError

log = logging.getLogger(__name__)


def version(spark: SparkSession, path: str) -> int | None:
    """The table's latest version, or None when there is no Delta table at `path`. From the
    log's snapshot (no Spark job: a `history(1)` query cost ~1 s per call)."""
    snapshot = _latest_snapshot(spark, path)
    return None if snapshot is None else int(snapshot.version())


def stats_properties(columns: Sequence[str]) -> dict[str, str]:
    """Delta table properties that keep per-file statistics of `columns` only (of none when
    empty), for `schemas.STATS_COLUMNS`."""
    if not columns:
        return {"delta.dataSkippingNumIndexedCols": "0"}
    return {"delta.dataSkippingStatsColumns": ",".join(columns)}


def keep_properties(spark: SparkSession, path: str, properties: dict[str, str]) -> None:
    """Give the table at `path` the `properties` it lacks (one metadata commit, once per table:
    tables an earlier lakeloop created). Nothing when there is no table yet: the write that
    creates it sets them (writer options). Read from the log's snapshot: no Spark job."""
    snapshot = _latest_snapshot(spark, path) if properties else None
    if snapshot is None:
        return
    conf = snapshot.metadata().configuration()
    differ = {k: v for k, v in properties.items() if not conf.contains(k) or conf.apply(k) != v}
    if differ:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(differ.items()))
        try:
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")
        except Exception as e:  # a concurrent commit, say: only the statistics wait a run
            log.warning("%s: table properties not set (%s); the next write tries again", path, e)
            return
        log.info("%s: table properties set: %s", path, pairs)


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


# Commit conflicts of an overwrite: another transaction committed to the table between this
# one's snapshot and its commit (files added or removed where this write reads or deletes, or
# the table created / its schema changed under it). Not ConcurrentTransactionException: that is
# the txnAppId guard of append_once.
CONFLICTS = (
    dx.ConcurrentAppendException,
    dx.ConcurrentDeleteReadException,
    dx.ConcurrentDeleteDeleteException,
    dx.ConcurrentWriteException,
    dx.MetadataChangedException,
    dx.ProtocolChangedException,
    dx.DeltaConcurrentModificationException,
)
WRITE_ATTEMPTS = 3  # replace_partition's attempts when commits conflict (1 = no retry)


class ConcurrentWriteError(JobError):
    """Another run committed the same table concurrently, every attempt: exit 1, re-run safe."""


def replace_partition(
    df: DataFrame,
    path: str,
    column: str,
    value: str | Sequence[str],
    user_metadata: str,
    partition_by: str | None = None,
    attempts: int | None = None,
    properties: dict[str, str] | None = None,
) -> int | None:
    """Overwrite exactly the rows where `column = value` (replaceWhere): idempotent per date.
    `value` may also be several values (`column IN (...)`): one commit replaces them all.
    Returns the version it committed (found by `user_metadata` in the newest commits of the
    log: no Spark job), None when Delta had nothing to commit. `properties`: the table's
    (set on the table the write creates; on an older table by `keep_properties` after the
    write, for the writes that follow).

    Two runs of the same date at once: Delta's optimistic concurrency lets one commit and
    rejects the other's commit as a whole (nothing of it lands). The loser writes the date
    again on the new snapshot, up to `attempts` (default WRITE_ATTEMPTS) times in all — the
    same as if it had run just after the winner; the date never holds two copies. When every
    attempt conflicts, ConcurrentWriteError says so in one line."""
    attempts = attempts or WRITE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            _overwrite_where(df, path, column, value, user_metadata, partition_by, properties)
        except CONFLICTS as e:
            kind = type(e).__name__
            if attempt == attempts:
                raise ConcurrentWriteError(
                    f"another run wrote {_shown(column, value)} of {path} concurrently ({kind}, "
                    f"{attempts} attempt(s)); the table holds that run's complete copy of the "
                    "date and nothing of this one, and re-running is safe"
                ) from None
            log.warning(
                "%s of %s: a concurrent run committed first (%s); writing the date again "
                "(attempt %d of %d)",
                _shown(column, value),
                path,
                kind,
                attempt + 1,
                attempts,
            )
            time.sleep(random.uniform(0.1, 0.5) * attempt)  # jitter: no lock-step re-conflict
            continue
        # after the write: its snapshot is loaded already (before it, the check cost the
        # first load of the table's log, ~0.4 s of a small job)
        keep_properties(df.sparkSession, path, properties or {})
        return version_written_by(df.sparkSession, path, user_metadata)
    return None  # not reached: the last attempt returns or raises


def _shown(column: str, value: str | Sequence[str]) -> str:
    return f"{column}={value}" if isinstance(value, str) else f"{column} in ({', '.join(value)})"


def _where(column: str, value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        raise ValueError(f"replace_partition: no value of {column} to replace")
    if any("'" in v for v in values):
        raise ValueError(f"replace_partition: a quote in a value of {column}: {values}")
    if len(values) == 1:
        return f"{column} = '{values[0]}'"
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _overwrite_where(
    df: DataFrame,
    path: str,
    column: str,
    value: str | Sequence[str],
    user_metadata: str,
    partition_by: str | None,
    properties: dict[str, str] | None = None,
) -> None:
    w = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", _where(column, value))
        .option("userMetadata", user_metadata)
        .options(**(properties or {}))
    )
    if partition_by:
        w = w.partitionBy(partition_by)
    w.save(path)


def _latest_snapshot(spark: SparkSession, path: str):
    """The JVM Snapshot of the table's latest version (Delta's log, no Spark job), or None when
    there is no Delta table at `path`."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    delta_log = DeltaTable.forPath(spark, path)._jdt.deltaLog()
    return delta_log.update(
        getattr(delta_log, "update$default$1")(),
        getattr(delta_log, "update$default$2")(),
        getattr(delta_log, "update$default$3")(),
    )


def committed_txn_version(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The last `txnVersion` Delta committed for `app_id` on the table at `path` (the
    SetTransaction actions of its latest snapshot), or None when there is none (or no table)."""
    snapshot = _latest_snapshot(spark, path)
    if snapshot is None:
        return None
    found = snapshot.transactions().get(app_id)
    return int(found.get()) if found.isDefined() else None


LOOK_BACK = 50  # commits searched for a run's own, newest first (others may commit meanwhile)


def version_written_by(spark: SparkSession, path: str, user_metadata: str) -> int | None:
    """The latest version of the table whose commit carries `user_metadata` (a run id), None
    when none of the newest LOOK_BACK commits does. Reads the newest commit files of the log
    through the Hadoop FileSystem, newest first (usually one: the run's own commit is the
    latest), never a Spark job (`history()` cost ~1 s per call)."""
    latest = version(spark, path)
    if latest is None:
        return None
    for v in range(latest, max(-1, latest - LOOK_BACK), -1):
        info = commit_info(spark, path, v)
        if info is not None and info.get("userMetadata") == user_metadata:
            return v
    return None


def commit_info(spark: SparkSession, path: str, version: int) -> dict | None:
    """The `commitInfo` action of the commit that made `version` (its operation, metrics and
    `userMetadata`), None when its commit file is gone (log cleanup keeps 30 days)."""
    uri = f"{path.rstrip('/')}/_delta_log/{version:020d}.json"
    if not storage.exists(spark, uri):
        return None
    for line in storage.read_text(spark, uri).splitlines():
        if line.startswith('{"commitInfo"'):
            return json.loads(line)["commitInfo"]
    return None


def written_by(spark: SparkSession, path: str, version: int) -> str | None:
    """The `userMetadata` (the run id) of the commit that made `version`, if any."""
    info = commit_info(spark, path, version)
    return info.get("userMetadata") if info else None


def append_once(
    df: DataFrame,
    path: str,
    app_id: str,
    txn_version: int,
    user_metadata: str,
    properties: dict[str, str] | None = None,
) -> tuple[bool, int | None]:
    """Append as Delta transaction (app_id, txn_version), exactly once. (False, None) when
    Delta's log already holds txnVersion >= `txn_version` for `app_id` (a replayed
    micro-batch): nothing is written and `df` is not evaluated. Otherwise (True, the version
    this append committed, found by its `user_metadata`, so a concurrent commit of another
    writer is never taken for it). Delta itself also skips a (app_id, txn_version) it has,
    should one land in between. `properties`: as replace_partition's."""
    spark = df.sparkSession
    done = committed_txn_version(spark, path, app_id)
    if done is not None and done >= txn_version:
        return False, None
    keep_properties(spark, path, properties or {})
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", txn_version)
        .option("userMetadata", user_metadata)
        .options(**(properties or {}))
        .save(path)
    )
    return True, version_written_by(spark, path, user_metadata)


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The table as it was at `version` (Delta time travel)."""
    return spark.read.format("delta").option("versionAsOf", version).load(path)


def checksum_column(df: DataFrame) -> Column:
    """An aggregate: an order-independent checksum of every column's values of `df`'s rows."""
    return F.coalesce(F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)")), F.lit(0)).cast("string")


def checksum(df: DataFrame) -> tuple[int, str]:
    """(rows, checksum_column): equal for equal rows, whatever their order."""
    r = df.agg(F.count(F.lit(1)).alias("n"), checksum_column(df).alias("h")).first()
    return r["n"], r["h"]


def roll_back(spark: SparkSession, path: str, written: int) -> str:
    """Undo this run's commit `written` of the table at `path`: Delta RESTORE to the version
    before it, or, when that commit created the table (version 0), remove the table's folder
    (Hadoop FS) so it does not exist, as before the run. Nothing is undone when another commit
    followed it (a RESTORE would drop that one too). Returns one line saying what was done."""
    current = version(spark, path)
    if current != written:
        return (
            f"NOT rolled back: its version {written} is followed by version {current} of "
            "another run (re-run this date)"
        )
    if written == 0:
        jvm = spark.sparkContext._jvm
        folder = jvm.org.apache.hadoop.fs.Path(path)
        folder.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(folder, True)
        jvm.org.apache.spark.sql.delta.DeltaLog.invalidateCache(spark._jsparkSession, folder)
        return "removed (this run had created it)"
    DeltaTable.forPath(spark, path).restoreToVersion(written - 1)
    return f"restored to version {written - 1} (RESTORE committed as version {written + 1})"
