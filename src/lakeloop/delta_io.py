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


def append_once(
    df: DataFrame, path: str, app_id: str, txn_version: int, user_metadata: str
) -> int | None:
    """Append as Delta transaction (app_id, txn_version): Delta skips a version it already
    committed for app_id, so a replayed micro-batch is written once. Returns the version
    written, or None when Delta skipped it as already committed."""
    before = version(df.sparkSession, path)
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", txn_version)
        .option("userMetadata", user_metadata)
        .save(path)
    )
    after = version(df.sparkSession, path)
    return after if after != before else None


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
