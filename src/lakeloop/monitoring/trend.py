"""The data-quality trend: per silver table and day, the rows validate read, wrote to silver and
quarantined (from the run log's latest successful validate run of that day), the pass rate, the
top quarantine reasons (from the quarantine table) and the GX Data Docs of that run."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeloop.runlog import SUCCEEDED
from lakeloop.spec import ValidationSpec

TOP_REASONS = 5
DATE_COLUMN = "_ingest_date"
REASON = "_reason"


def validate_runs(runs: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """The latest successful validate run of each run date in [first, last]."""
    ok = runs.where(
        (F.col("job") == "validate")
        & (F.col("status") == SUCCEEDED)
        & F.col("run_date").between(F.lit(first), F.lit(last))
    )
    w = Window.partitionBy("run_date").orderBy(F.col("finished_at").desc())
    return ok.withColumn("__n", F.row_number().over(w)).where(F.col("__n") == 1).drop("__n")


def table_trend(runs: DataFrame, v: ValidationSpec, silver_table: str) -> DataFrame:
    """`validate_runs` rows -> one row per data_date of `v`'s silver table: rows_in,
    silver_rows, quarantined, pass_rate (silver / rows in; null for an empty day),
    validate_run_id, data_docs."""
    rows_in = F.col("input_counts")[v.source]
    silver = F.col("output_counts")[v.silver]
    return runs.where(rows_in.isNotNull()).select(
        F.lit(silver_table).alias("table"),
        F.col("run_date").alias("data_date"),
        rows_in.alias("rows_in"),
        silver.alias("silver_rows"),
        F.col("output_counts")[v.quarantine].alias("quarantined"),
        F.when(rows_in > 0, silver / rows_in).cast("double").alias("pass_rate"),
        F.col("run_id").alias("validate_run_id"),
        F.col("details")[f"{v.source}.data_docs"].alias("data_docs"),
    )


def top_reasons(quarantine: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """Quarantine rows of data dates in [first, last] -> data_date, top_reasons (a map of the
    TOP_REASONS most frequent failed rules -> rows; a row failing two rules counts for both)."""
    rules = F.explode(F.split(F.coalesce(F.col(REASON), F.lit("(no reason)")), "; "))
    counted = (
        quarantine.where(F.col(DATE_COLUMN).between(F.lit(first), F.lit(last)))
        .select(F.col(DATE_COLUMN).alias("data_date"), rules.alias("reason"))
        .groupBy("data_date", "reason")
        .agg(F.count(F.lit(1)).alias("rows"))
    )
    w = Window.partitionBy("data_date").orderBy(F.col("rows").desc(), "reason")
    return (
        counted.withColumn("__n", F.row_number().over(w))
        .where(F.col("__n") <= TOP_REASONS)
        .groupBy("data_date")
        .agg(F.map_from_entries(F.collect_list(F.struct("reason", "rows"))).alias("top_reasons"))
    )
