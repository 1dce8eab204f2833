"""The online server's day, from its request log (`serving.log_table`, written by
lakeloop.serving.request_log): what it served per model alias, the served features' drift
against the champion's reference, and champion-vs-challenger quality on the labels matured
since. Pure transforms: the monitor job reads the tables and writes `metrics_online`."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop.monitoring import quality
from lakeloop.transforms.modeling import PREDICTION_DATE

OK = "ok"
REJECTED = "(rejected)"  # the traffic row of the records refused as bad input


def served_on(log: DataFrame, date: dt.date) -> DataFrame:
    """The request log's rows served on `date` (`served_date`: a local date in the
    pipeline's zone, set by the server)."""
    return log.where(F.col("served_date") == F.lit(date))


def scored_records(served: DataFrame, features: T.StructType, keys: T.StructType) -> DataFrame:
    """The records the server scored (status ok), with the served features (`features`: the
    columns to read from the logged JSON, with their feature-table types) and the entity key
    columns (`keys`; null when a request gave no key) as columns of their own."""
    ok = served.where(F.col("status") == OK)
    return ok.select(
        "*",
        F.from_json("features", features).alias("__f"),
        F.from_json("entity_key", keys).alias("__k"),
    ).select(*ok.columns, "__f.*", *[F.col(f"__k.{k}").alias(k) for k in keys.fieldNames()])


def traffic(served: DataFrame) -> DataFrame:
    """One row per (model_alias, model_version) that answered: requests, rows (records
    scored), mean_prediction, latency_p50_ms / latency_p99_ms (per record: its request's
    latency); and one `(rejected)` row counting the refused records and their requests."""
    counts = [
        F.countDistinct("request_id").alias("requests"),
        F.count(F.lit(1)).alias("rows"),
    ]
    stats = ("mean_prediction", "latency_p50_ms", "latency_p99_ms")
    answered = (
        served.where(F.col("status") == OK)
        .groupBy("model_alias", "model_version")
        .agg(
            *counts,
            F.avg("prediction").alias(stats[0]),
            F.percentile_approx("latency_ms", 0.5, 10_000).cast("double").alias(stats[1]),
            F.percentile_approx("latency_ms", 0.99, 10_000).cast("double").alias(stats[2]),
        )
    )
    refused = (
        served.where(F.col("status") != OK)
        .agg(*counts)
        .where(F.col("rows") > 0)
        .select(
            F.lit(REJECTED).alias("model_alias"),
            F.lit(None).cast("int").alias("model_version"),
            "requests",
            "rows",
            *[F.lit(None).cast("double").alias(c) for c in stats],
        )
    )
    return answered.select(
        "model_alias", F.col("model_version").cast("int"), "requests", "rows", *stats
    ).unionByName(refused)


def by_alias(records: DataFrame, task: str) -> DataFrame:
    """`scored_records` in the shape quality.with_labels / quality_metrics read: the
    request time as `feature_ts` (a label counts when it comes at or after the request), the
    served date as the prediction date, the alias as the role, `score` = the positive class's
    probability (classification) or the prediction."""
    score = F.col("probability") if task == "classification" else F.col("prediction")
    return records.select(
        "*",
        F.col("served_at").alias("feature_ts"),
        F.col("served_date").alias(PREDICTION_DATE),
        F.col("model_alias").alias(quality.ROLE),
        score.alias("score"),
    )


def alias_quality(
    records: DataFrame, labels: DataFrame, keys: list[str], task: str, metrics: tuple[str, ...]
) -> DataFrame:
    """Per (model_name, model_version, alias, served date) and metric: the value on the served
    records whose entity's label has matured (records without a key cannot be matched and do
    not count), with the matured label count."""
    keyed = by_alias(records, task).where(
        F.lit(True) if not keys else F.coalesce(*[F.col(k).isNotNull() for k in keys])
    )
    joined = quality.with_labels(keyed, labels, keys)
    rows = joined.select(
        "model_name",
        F.col("model_version").cast("int").alias("model_version"),
        quality.ROLE,
        PREDICTION_DATE,
        "prediction",
        "score",
        quality.LABEL,
    )
    return quality.quality_metrics(rows, task, metrics)
