"""Model quality from late labels: the predictions of past dates joined to the labels that have
matured since, and the spec's metrics per model version, role (champion / challenger in shadow)
and prediction date.

A label has matured by the run date D when it is in the label table's snapshot read by the run
(its Delta version is recorded on every row) and its label time falls on or before D, a local
date in the pipeline's zone: a re-run for D gives the same rows, and a later date (or more labels
landing) recomputes them. A prediction made at `feature_ts` is answered by the entity's first
label at or after `feature_ts` (a sale after the listing; for a label on the entity's own table,
the entity row itself).

The metrics are Spark aggregations per group (no rows reach the driver): RMSE, MAE and R^2 from
sums; accuracy, precision, recall and F1 from the confusion counts; AUC exactly, from ranks
(Mann-Whitney U with tied scores averaged)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.jobs.build_training_set import label_events
from lakeloop.spec import Pipeline, PipelineSpec
from lakeloop.transforms.modeling import PREDICTION_DATE

LABEL = "label"
LABEL_TS = "label_ts"
ROLE = "role"
CHAMPION, CHALLENGER = "champion", "challenger"
GROUP = ["model_name", "model_version", ROLE, PREDICTION_DATE]
LOWER_IS_BETTER = {"rmse", "mae"}


@dataclass(frozen=True)
class Labels:
    rows: DataFrame  # entity key(s), label_ts, label (double): matured, non-null
    table: str
    version: int | None


def matured_labels(spark: SparkSession, pipeline: Pipeline, run_date: dt.date) -> Labels:
    """The labels matured by the end of `run_date` in the label table's current snapshot
    (read at that version, so the rows and the version recorded agree)."""
    spec = pipeline.spec
    key = spec.label.source
    path = pipeline.table_path(key)
    version = delta_io.version(spark, path)
    if version is None:
        empty = spark.createDataFrame(
            [],
            f"{', '.join(f'`{k}` string' for k in spec.entity_keys)}, label_ts timestamp, "
            "label double",
        )
        return Labels(empty, spec.table(key), None)
    silver = delta_io.read_version(spark, path, version)
    return Labels(label_rows(label_events(silver, spec, run_date), spec), spec.table(key), version)


def label_rows(events: DataFrame, spec: PipelineSpec) -> DataFrame:
    """`label_events` output -> entity key(s), LABEL_TS, LABEL (double), non-null labels only."""
    name = spec.label.label_name
    return events.where(F.col(name).isNotNull() & F.col(spec.label_time_column).isNotNull()).select(
        *spec.entity_keys,
        F.col(spec.label_time_column).alias(LABEL_TS),
        F.col(name).cast("double").alias(LABEL),
    )


def predictions_window(predictions: DataFrame, run_date: dt.date, days: int) -> DataFrame:
    """The prediction rows of prediction dates in [run_date - days, run_date]."""
    first = run_date - dt.timedelta(days=days)
    return predictions.where(F.col(PREDICTION_DATE).between(F.lit(first), F.lit(run_date)))


def with_labels(predictions: DataFrame, labels: DataFrame, keys: list[str]) -> DataFrame:
    """Every prediction row with the entity's first matured label at or after its feature_ts
    (LABEL and LABEL_TS null when none has matured)."""
    lab = labels.select(*[F.col(k).alias(f"__l_{k}") for k in keys], LABEL_TS, LABEL)
    on = [F.col(k) == F.col(f"__l_{k}") for k in keys]
    on.append(F.col(LABEL_TS) >= F.col("feature_ts"))
    joined = predictions.join(lab, on, "left")
    ident = [*keys, "feature_ts", PREDICTION_DATE]
    first = Window.partitionBy(*ident).orderBy(F.col(LABEL_TS).asc_nulls_last())
    return (
        joined.withColumn("__n", F.row_number().over(first))
        .where(F.col("__n") == 1)
        .drop("__n", *[f"__l_{k}" for k in keys])
    )


def by_role(scored: DataFrame, task: str) -> DataFrame:
    """One row per (prediction row, model that scored it): the champion's, and the
    challenger's shadow score where there was one. Columns: GROUP, prediction, score (the
    positive class's probability for a classifier, else the prediction), LABEL."""

    def rows(role: str, version: str, prediction: str, score: str) -> DataFrame:
        return scored.where(F.col(version).isNotNull()).select(
            "model_name",
            F.col(version).cast("int").alias("model_version"),
            F.lit(role).alias(ROLE),
            PREDICTION_DATE,
            F.col(prediction).alias("prediction"),
            F.col(score).alias("score"),
            LABEL,
        )

    classifier = task == "classification"
    champion = rows(
        CHAMPION, "model_version", "prediction", "probability" if classifier else "prediction"
    )
    challenger = rows(
        CHALLENGER,
        "challenger_version",
        "challenger_prediction",
        "challenger_probability" if classifier else "challenger_prediction",
    )
    return champion.unionByName(challenger)


def _ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num / den)


def quality_metrics(rows: DataFrame, task: str, metrics: tuple[str, ...]) -> DataFrame:
    """`by_role` rows -> one row per GROUP and metric: value (null when no label has matured
    or the metric is undefined, e.g. AUC with one class), predictions (rows scored), matured
    (rows with a label)."""
    ok = F.col("prediction").isNotNull() & F.col(LABEL).isNotNull()
    y, p = F.col(LABEL), F.col("prediction")
    n = F.sum(F.when(ok, 1).otherwise(0))
    counts = [
        F.count("prediction").alias("predictions"),
        n.alias("matured_labels"),
    ]
    if task == "regression":
        aggs = [
            F.sum(F.when(ok, (p - y) * (p - y))).alias("sse"),
            F.sum(F.when(ok, F.abs(p - y))).alias("sae"),
            F.sum(F.when(ok, y)).alias("sy"),
            F.sum(F.when(ok, y * y)).alias("syy"),
        ]
        g = rows.groupBy(*GROUP).agg(*counts, *aggs)
        m = F.col("matured_labels")
        sst = F.col("syy") - F.col("sy") * F.col("sy") / m
        values = {
            "rmse": F.sqrt(_ratio(F.col("sse"), m)),
            "mae": _ratio(F.col("sae"), m),
            "r2": F.when((m > 1) & (sst > 0), 1 - F.col("sse") / sst),
        }
    else:
        pos, yes = (y == 1.0), (p == 1.0)
        aggs = [
            F.sum(F.when(ok & pos & yes, 1).otherwise(0)).alias("tp"),
            F.sum(F.when(ok & ~pos & yes, 1).otherwise(0)).alias("fp"),
            F.sum(F.when(ok & pos & ~yes, 1).otherwise(0)).alias("fn"),
            F.sum(F.when(ok & ~pos & ~yes, 1).otherwise(0)).alias("tn"),
        ]
        g = rows.groupBy(*GROUP).agg(*counts, *aggs).join(_auc(rows), GROUP, "left")
        tp, fp, fn, tn = (F.col(c) for c in ("tp", "fp", "fn", "tn"))
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        values = {
            "auc": F.col("auc"),
            "accuracy": _ratio(tp + tn, F.col("matured_labels")),
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
        }
    stacked = F.explode(
        F.array(
            *[
                F.struct(F.lit(k).alias("metric"), values[k].cast("double").alias("value"))
                for k in metrics
            ]
        )
    )
    return g.select(*GROUP, "predictions", "matured_labels", stacked.alias("m")).select(
        *GROUP, "m.metric", "m.value", "predictions", "matured_labels"
    )


def _auc(rows: DataFrame, group: list[str] | None = None) -> DataFrame:
    """Exact ROC AUC per group from ranks: (sum of the positives' ranks - P(P+1)/2) / (P N),
    tied scores sharing their average rank. Null when a group has one class only."""
    group = group or GROUP
    ok = rows.where(F.col("score").isNotNull() & F.col(LABEL).isNotNull())
    order = Window.partitionBy(*group).orderBy("score")
    ranked = ok.withColumn("__r", F.row_number().over(order))
    ties = ranked.groupBy(*group, "score").agg(
        F.avg("__r").alias("rank"),
        F.sum(F.when(F.col(LABEL) == 1.0, 1).otherwise(0)).alias("pos"),
        F.count(F.lit(1)).alias("n"),
    )
    g = ties.groupBy(*group).agg(
        F.sum(F.col("rank") * F.col("pos")).alias("rank_sum"),
        F.sum("pos").alias("P"),
        (F.sum("n") - F.sum("pos")).alias("N"),
    )
    P, N = F.col("P"), F.col("N")  # noqa: N806
    auc = F.when((P > 0) & (N > 0), (F.col("rank_sum") - P * (P + 1) / 2) / (P * N))
    return g.select(*group, auc.alias("auc"))


def pooled(rows: DataFrame, task: str, metric: str) -> DataFrame:
    """One row per (model_version, role): `metric` over all its matured labels pooled (not
    an average of daily values), and the label count: what the retrain policy compares."""
    # one date for every row: the groups are then (name, version, role) (a constant, not a
    # null, so the AUC's join on the group columns matches)
    pooled_rows = rows.withColumn(PREDICTION_DATE, F.lit(dt.date(1970, 1, 1)))
    return quality_metrics(pooled_rows, task, (metric,)).drop(PREDICTION_DATE)


def matured(spark: SparkSession, pipeline: Pipeline, run_date: dt.date) -> DataFrame:
    """The prediction rows of the dates in [run_date - monitoring.quality_days, run_date] that
    have a matured label, with LABEL and LABEL_TS (for the report's residual and ROC plots)."""
    spec = pipeline.spec
    path = pipeline.table_path(spec.model.predictions)
    if delta_io.version(spark, path) is None:
        raise FileNotFoundError(f"{spec.table(spec.model.predictions)} does not exist at {path}")
    preds = predictions_window(delta_io.read(spark, path), run_date, spec.monitoring.quality_days)
    labels = matured_labels(spark, pipeline, run_date).rows
    return with_labels(preds, labels, spec.entity_keys).where(F.col(LABEL).isNotNull())
