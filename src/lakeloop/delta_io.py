"""Small Delta helpers used by jobs (I/O lives here and in jobs, never in transforms)."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F


def version(spark: SparkSession, path: str) -> int | None:
    """The table's latest version, or None when there is no Delta table at `path`."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def replace_partition(
    df: DataFrame,
    path: str,
    column: str,
    value: str,
    user_metadata: str,
    partition_by: str | None = None,
) -> None:
    """Overwrite exactly the rows where `column = value` (replaceWhere): idempotent per date."""
    w = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} = '{value}'")
        .option("userMetadata", user_metadata)
    )
    if partition_by:
        w = w.partitionBy(partition_by)
    w.save(path)


def committed_txn_version(spark: SparkSession, path: str, app_id: str) -> int | None:
    """The last `txnVersion` Delta committed for `app_id` on the table at `path` (the
    SetTransaction actions of its latest snapshot), or None when there is none (or no table)."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    delta_log = DeltaTable.forPath(spark, path)._jdt.deltaLog()
    snapshot = delta_log.update(
        getattr(delta_log, "update$default$1")(),
        getattr(delta_log, "update$default$2")(),
        getattr(delta_log, "update$default$3")(),
    )
    found = snapshot.transactions().get(app_id)
    return int(found.get()) if found.isDefined() else None


def version_written_by(spark: SparkSession, path: str, user_metadata: str) -> int | None:
    """The latest version of the table whose commit carries `user_metadata` (a run id)."""
    rows = (
        DeltaTable.forPath(spark, path)
        .history(50)
        .where(F.col("userMetadata") == user_metadata)
        .agg(F.max("version").alias("v"))
        .first()
    )
    return rows["v"]


def append_once(
    df: DataFrame, path: str, app_id: str, txn_version: int, user_metadata: str
) -> int | None:
    """Append as Delta transaction (app_id, txn_version), exactly once: when Delta's log
    already holds txnVersion >= `txn_version` for `app_id` (a replayed micro-batch) nothing is
    written and None is returned; otherwise the version this append committed (found by its
    `user_metadata`, so a concurrent commit of another writer is never taken for it). Delta
    itself also skips a (app_id, txn_version) it has, should one land in between."""
    spark = df.sparkSession
    done = committed_txn_version(spark, path, app_id)
    if done is not None and done >= txn_version:
        return None
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", txn_version)
        .option("userMetadata", user_metadata)
        .save(path)
    )
    return version_written_by(spark, path, user_metadata)


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
