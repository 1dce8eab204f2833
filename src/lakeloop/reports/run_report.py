"""The run report's data: small aggregates of the metrics tables, the silver and feature tables,
the matured predictions and the registry, collected for one pipeline and date.

Two layers. The transforms (`pass_rates` ... `decision_history`) take a DataFrame and return a
small DataFrame (a histogram, a few hundred sampled points, one row per feature); they never
read, write or collect. `collect` is the edge: it reads the tables, runs the transforms and
brings only their small results to the driver (as pandas frames) in a `RunReport`. A part
whose data is absent (no matured labels yet, no challenger, no champion in the registry) is a
plain sentence in `RunReport.notes` instead of data; only a date the monitor has not run for is
an error (it names the command to run)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError
from lakeloop.monitoring import tables as mt
from lakeloop.spec import Pipeline
from lakeloop.transforms.features import FEATURE_DATE
from lakeloop.transforms.modeling import PREDICTION_DATE

log = logging.getLogger(__name__)

SAMPLE_POINTS = 2000  # at most this many points in a scatter plot
HIST_BINS = 20  # equal-width buckets of a distribution / residual histogram
ROC_BUCKETS = 100  # score buckets: the ROC curve's thresholds are their edges
TOP_CATEGORIES = 15
TOP_REASONS = 10
INGEST_DATE = "_ingest_date"
WEIGHT_ARTIFACTS = (
    ("importance", "feature_importances.json"),
    ("coefficient", "feature_coefficients.json"),
)


# ---------------------------------------------------------------------------------------------
# transforms: DataFrame -> small DataFrame (pure: no I/O, no collect)


def of_run_date(df: DataFrame, date: dt.date) -> DataFrame:
    return df.where(F.col(mt.RUN_DATE) == F.lit(date))


def pass_rates(data_quality: DataFrame) -> DataFrame:
    """metrics_data_quality rows of one run date -> per silver table and data date: rows in,
    silver rows, quarantined, pass rate, the validate run and its Data Docs."""
    return data_quality.select(
        "table",
        "data_date",
        "rows_in",
        "silver_rows",
        "quarantined",
        "pass_rate",
        "top_reasons",
        "validate_run_id",
        "data_docs",
    ).orderBy("table", "data_date")


def _missing(c: str, dtype: T.DataType) -> Column:
    missing = F.col(c).isNull()
    if isinstance(dtype, T.FloatType | T.DoubleType):
        missing = missing | F.isnan(c)
    return missing


def _stack(structs: list[Column]) -> Column:
    return F.explode(F.array(*structs))


def missing_shares(df: DataFrame, columns: list[str]) -> DataFrame:
    """(column, missing_share, rows): the share of null (or NaN) values of each column."""
    n = F.count(F.lit(1))
    shares = [
        F.struct(
            F.lit(c).alias("column"),
            (F.sum(F.when(_missing(c, df.schema[c].dataType), 1).otherwise(0)) / n)
            .cast("double")
            .alias("missing_share"),
            n.alias("rows"),
        )
        for c in columns
    ]
    return df.agg(F.array(*shares).alias("a")).select(F.explode("a").alias("s")).select("s.*")


def _number(df: DataFrame, c: str) -> Column:
    """A numeric or boolean column as double, NaN as null."""
    x = F.col(c).cast("double")
    return F.when(~F.isnan(x), x)


def value_ranges(df: DataFrame, columns: list[str]) -> DataFrame:
    """(feature, lo, hi): min and max of each column's non-null, non-NaN values (as double)."""
    stats = [
        F.struct(
            F.lit(c).alias("feature"),
            F.min(_number(df, c)).alias("lo"),
            F.max(_number(df, c)).alias("hi"),
        )
        for c in columns
    ]
    return df.agg(F.array(*stats).alias("a")).select(F.explode("a").alias("s")).select("s.*")


def bucket_counts(
    df: DataFrame, ranges: dict[str, tuple[float, float]], bins: int = HIST_BINS
) -> DataFrame:
    """(feature, bucket, rows): counts of `bins` equal-width buckets over each column's
    [lo, hi] (`value_ranges`), in one pass over `df`. Null and NaN values are not counted."""
    buckets = []
    for c, (lo, hi) in ranges.items():
        width = (hi - lo) / bins if hi > lo else 1.0
        x = _number(df, c)
        # least() skips nulls: a null value must stay out of the last bucket
        b = F.when(x.isNotNull(), F.least(F.floor((x - F.lit(lo)) / F.lit(width)), F.lit(bins - 1)))
        buckets.append(F.struct(F.lit(c).alias("feature"), b.cast("int").alias("bucket")))
    return (
        df.select(_stack(buckets).alias("s"))
        .select("s.*")
        .where(F.col("bucket").isNotNull())
        .groupBy("feature", "bucket")
        .agg(F.count(F.lit(1)).alias("rows"))
    )


def category_counts(df: DataFrame, columns: list[str], top: int = TOP_CATEGORIES) -> DataFrame:
    """(feature, value, rows): the `top` most frequent values of each column (null as
    "(null)")."""
    from pyspark.sql import Window

    values = [
        F.struct(
            F.lit(c).alias("feature"),
            F.coalesce(F.col(c).cast("string"), F.lit("(null)")).alias("value"),
        )
        for c in columns
    ]
    counted = (
        df.select(_stack(values).alias("s"))
        .select("s.*")
        .groupBy("feature", "value")
        .agg(F.count(F.lit(1)).alias("rows"))
    )
    w = Window.partitionBy("feature").orderBy(F.col("rows").desc(), "value")
    return counted.withColumn("n", F.row_number().over(w)).where(F.col("n") <= top).drop("n")


def correlations(df: DataFrame, columns: list[str], label: str) -> DataFrame:
    """(feature, correlation, rows): Pearson correlation of each column with the label over
    the rows where both are present (booleans as 0/1)."""
    y = _number(df, label)
    stats = []
    for c in columns:
        x = _number(df, c)
        both = x.isNotNull() & y.isNotNull()
        stats.append(
            F.struct(
                F.lit(c).alias("feature"),
                F.corr(F.when(both, x), F.when(both, y)).alias("correlation"),
                F.sum(F.when(both, 1).otherwise(0)).cast("long").alias("rows"),
            )
        )
    return df.agg(F.array(*stats).alias("a")).select(F.explode("a").alias("s")).select("s.*")


def _sample_order(keys: list[str]) -> Column:
    """A deterministic pseudo-random order: the same rows are sampled at every rebuild."""
    return F.xxhash64(*[F.col(k) for k in keys])


def residual_sample(matured: DataFrame, keys: list[str], n: int = SAMPLE_POINTS) -> DataFrame:
    """(prediction, label, residual = label - prediction) of at most `n` matured rows."""
    ok = matured.where(F.col("prediction").isNotNull() & F.col("label").isNotNull())
    return (
        ok.orderBy(_sample_order([*keys, PREDICTION_DATE]))
        .limit(n)
        .select(
            F.col("prediction").cast("double").alias("prediction"),
            F.col("label").cast("double").alias("label"),
            (F.col("label") - F.col("prediction")).cast("double").alias("residual"),
        )
    )


def with_residual(matured: DataFrame) -> DataFrame:
    return matured.withColumn("residual", F.col("label") - F.col("prediction"))


def classifier_counts(
    matured: DataFrame, score: str = "probability", buckets: int = ROC_BUCKETS
) -> DataFrame:
    """(label, predicted, bucket, rows): a classifier's matured predictions counted per class,
    predicted class and score bucket [b/buckets, (b+1)/buckets) (a score of 1 in the last):
    the confusion matrix and the ROC curve at every bucket edge come from these counts."""
    ok = matured.where(
        F.col("prediction").isNotNull() & F.col("label").isNotNull() & F.col(score).isNotNull()
    )
    b = F.least(F.floor(F.col(score) * buckets), F.lit(buckets - 1)).cast("int")
    return ok.groupBy(
        F.col("label").cast("int").alias("label"),
        F.col("prediction").cast("int").alias("predicted"),
        b.alias("bucket"),
    ).agg(F.count(F.lit(1)).alias("rows"))


def shadow_sample(
    predictions: DataFrame, champion: str, challenger: str, keys: list[str], n: int = SAMPLE_POINTS
) -> DataFrame:
    """(champion, challenger, model_version, challenger_version): at most `n` rows scored by
    both models."""
    ok = predictions.where(F.col(champion).isNotNull() & F.col(challenger).isNotNull())
    return (
        ok.orderBy(_sample_order(keys))
        .limit(n)
        .select(
            F.col(champion).cast("double").alias("champion"),
            F.col(challenger).cast("double").alias("challenger"),
            "model_version",
            "challenger_version",
        )
    )


def latest_quality(quality: DataFrame, date: dt.date) -> DataFrame:
    """metrics_quality rows of the latest run date on or before `date`: each prediction date's
    metrics as of that run (later runs recompute them with more labels)."""
    upto = quality.where(F.col(mt.RUN_DATE) <= F.lit(date))
    last = upto.agg(F.max(mt.RUN_DATE).alias("d"))
    return (
        upto.join(last, F.col(mt.RUN_DATE) == F.col("d"))
        .drop("d")
        .select(
            mt.RUN_DATE,
            "model_version",
            "role",
            "prediction_date",
            "metric",
            "value",
            "test_value",
            "predictions",
            "matured_labels",
        )
        .orderBy("metric", "model_version", "role", "prediction_date")
    )


def drift_summary(drift: DataFrame) -> DataFrame:
    """(run_date, max_psi, drifted): per run date, the largest feature PSI and how many
    features drifted (prediction drift not counted)."""
    features = drift.where(F.col("kind") != "prediction")
    return features.groupBy(mt.RUN_DATE).agg(
        F.max("psi").alias("max_psi"),
        F.sum(F.when(F.col("drifted"), 1).otherwise(0)).cast("long").alias("drifted"),
    )


def decision_history(decisions: DataFrame, drift: DataFrame) -> DataFrame:
    """One row per run date: the decision row and the day's drift summary (max PSI, drifted
    features)."""
    return (
        decisions.select(*mt.DECISIONS_SCHEMA.fieldNames())
        .join(drift_summary(drift), mt.RUN_DATE, "left")
        .orderBy(mt.RUN_DATE)
    )


def date_runs(runs: DataFrame, date: dt.date, also: list[str]) -> DataFrame:
    """The run log's runs of `date` (and the runs `also` names, e.g. the model's training run):
    job, run id, status, run date, end, the Delta versions written (JSON)."""
    pick = F.col("run_date") == F.lit(date)
    if also:
        pick = pick | F.col("run_id").isin(also)
    return (
        runs.where(pick)
        .select(
            "job",
            "run_id",
            "status",
            "run_date",
            F.date_format("finished_at", "yyyy-MM-dd HH:mm:ss").alias("finished_at"),
            F.to_json("delta_versions").alias("delta_versions"),
        )
        .orderBy("finished_at")
    )


# ---------------------------------------------------------------------------------------------
# math on small arrays (driver)


def confusion_and_buckets(counts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`classifier_counts` rows -> the confusion matrix (label, predicted, rows) and the score
    buckets (bucket, positives, rows)."""
    confusion = counts.groupby(["label", "predicted"], as_index=False)["rows"].sum()
    pos = counts.assign(positives=counts["rows"].where(counts["label"] == 1, 0))
    buckets = pos.groupby("bucket", as_index=False)[["positives", "rows"]].sum()
    return confusion, buckets


def quarantine_reasons(days: pd.DataFrame, top: int = TOP_REASONS) -> pd.DataFrame:
    """metrics_data_quality rows (top_reasons maps) -> (reason, rows) summed over the tables
    and days, the `top` most frequent."""
    total: dict[str, int] = {}
    for reasons in days["top_reasons"]:
        for reason, n in dict(reasons or {}).items():
            total[reason] = total.get(reason, 0) + int(n)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return pd.DataFrame(ranked, columns=["reason", "rows"])


def roc_curve(buckets: pd.DataFrame, n_buckets: int = ROC_BUCKETS) -> tuple[pd.DataFrame, float]:
    """`confusion_and_buckets` buckets -> (threshold, fpr, tpr) at every bucket edge, from the highest
    threshold down, and the area under that curve (trapezoids; equals the exact AUC when no
    two scores of different classes share a bucket)."""
    b = buckets.sort_values("bucket", ascending=False)
    pos = float(b["positives"].sum())
    neg = float((b["rows"] - b["positives"]).sum())
    points = [(1.0 + 1.0 / n_buckets, 0.0, 0.0)]
    tp = fp = 0.0
    for r in b.itertuples():
        tp += r.positives
        fp += r.rows - r.positives
        points.append((r.bucket / n_buckets, fp / neg if neg else 0.0, tp / pos if pos else 0.0))
    roc = pd.DataFrame(points, columns=["threshold", "fpr", "tpr"])
    if not pos or not neg:
        return roc, float("nan")
    fpr, tpr = roc["fpr"].tolist(), roc["tpr"].tolist()
    auc = sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(fpr)))
    return roc, float(auc)


def with_edges(
    counts: pd.DataFrame, ranges: dict[str, tuple[float, float]], bins: int = HIST_BINS
) -> pd.DataFrame:
    """`bucket_counts` rows + lo/hi of each bucket, every bucket present (0 rows if empty)."""
    rows = []
    got = {(r.feature, int(r.bucket)): int(r.rows) for r in counts.itertuples()}
    for feature, (lo, hi) in ranges.items():
        width = (hi - lo) / bins if hi > lo else 1.0
        n = bins if hi > lo else 1
        for b in range(n):
            rows.append(
                (feature, b, lo + b * width, lo + (b + 1) * width, got.get((feature, b), 0))
            )
    return pd.DataFrame(rows, columns=["feature", "bucket", "lo", "hi", "rows"])


# ---------------------------------------------------------------------------------------------
# what the registry says about the monitored model


@dataclass(frozen=True)
class ModelFacts:
    name: str
    version: int
    run_id: str  # the MLflow run that trained it
    git_sha: str
    train_run_id: str  # lakeloop's run id of the train job
    training_table: str
    training_path: str
    training_version: int | None
    weights_kind: str  # importance | coefficient | "" (none logged)
    weights: dict[str, float]


# (pipeline, model version or None for the champion) -> the facts, or why there are none
FactsSource = Callable[[Pipeline, int | None], "ModelFacts | str"]


def registry_facts(pipeline: Pipeline, version: int | None) -> ModelFacts | str:
    """The model version's facts from MLflow (tags, lineage, the logged feature weights), or a
    sentence saying why there are none."""
    from lakeloop.ml import tracking

    name = pipeline.spec.model.name
    client = tracking.configure(pipeline.cfg)
    try:
        ref = (
            tracking.by_alias(client, name, tracking.CHAMPION)
            if version is None
            else tracking.by_version(client, name, version)
        )
    except tracking.RegistryError as e:
        return str(e)
    if ref is None:
        return (
            f"model {name} has no `{tracking.CHAMPION}` in the registry (run `lakeloop run train`)"
        )
    tags = client.get_run(ref.run_id).data.tags
    try:
        lin = tracking.lineage(client, ref)
        table, path, tversion = lin.table, lin.path, lin.delta_version
    except tracking.RegistryError as e:
        log.warning("%s", e)
        table, path, tversion = "", "", None
    kind, weights = "", {}
    logged = {a.path for a in client.list_artifacts(ref.run_id)}
    for k, artifact in WEIGHT_ARTIFACTS:
        if artifact in logged:
            with tempfile.TemporaryDirectory() as tmp, tracking.no_progress_bar():
                local = client.download_artifacts(ref.run_id, artifact, tmp)
                weights = {str(a): float(b) for a, b in json.loads(Path(local).read_text()).items()}
            kind = k
            break
    return ModelFacts(
        name=name,
        version=ref.version,
        run_id=ref.run_id,
        git_sha=tags.get(tracking.TAG_GIT_SHA, ""),
        train_run_id=tags.get(tracking.TAG_RUN_ID, ""),
        training_table=table,
        training_path=path,
        training_version=tversion,
        weights_kind=kind,
        weights=weights,
    )


MaturedSource = Callable[[SparkSession, Pipeline, dt.date], DataFrame]


def _matured(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> DataFrame:
    from lakeloop.monitoring.quality import matured

    return matured(spark, pipeline, date)


# ---------------------------------------------------------------------------------------------
# the report's data, collected


@dataclass(frozen=True)
class IndexRow:
    date: dt.date
    recommended: bool
    rule: str
    in_cooldown: bool
    reason: str
    drifted: int
    max_psi: float | None


@dataclass
class RunReport:
    pipeline: str
    date: dt.date
    task: str  # regression | classification
    model_name: str
    psi_threshold: float
    metric: str  # the spec's promotion metric: the one plotted over time
    generated_at: str
    label: str = "label"  # the model's label column
    decision: dict | None = None
    evidence: str = ""
    decisions: pd.DataFrame | None = None  # decision_history up to the date
    index: list[IndexRow] = field(default_factory=list)  # every monitored date, newest first
    dq_days: pd.DataFrame | None = None
    dq_reasons: pd.DataFrame | None = None
    missing: pd.DataFrame | None = None
    missing_source: str = ""
    histograms: pd.DataFrame | None = None  # with_edges rows
    categories: pd.DataFrame | None = None
    distributions_source: str = ""
    correlations: pd.DataFrame | None = None
    correlation_source: str = ""
    drift: pd.DataFrame | None = None
    matured_rows: int = 0
    residuals: pd.DataFrame | None = None
    residual_hist: pd.DataFrame | None = None
    confusion: pd.DataFrame | None = None
    roc: pd.DataFrame | None = None
    auc: float | None = None
    quality: pd.DataFrame | None = None
    shadow: pd.DataFrame | None = None
    facts: ModelFacts | None = None
    lineage: pd.DataFrame | None = None
    online: pd.DataFrame | None = None  # metrics_online rows of the date (with `serving:`)
    serves: bool = False  # the spec has `serving:`
    notes: dict[str, str] = field(default_factory=dict)


def _pandas(df: DataFrame) -> pd.DataFrame | None:
    """A small DataFrame on the driver; None when it has no rows."""
    p = df.toPandas()
    return p if len(p) else None


def _exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)  # a folder check: no Spark job


def _table(spark: SparkSession, pipeline: Pipeline, key: str) -> DataFrame | None:
    path = pipeline.table_path(key)
    return delta_io.read(spark, path) if _exists(spark, path) else None


def _monitor_hint(pipeline: Pipeline, date: dt.date | str) -> str:
    return f"run `lakeloop run monitor --pipeline {pipeline.name} --date {date}` first"


def latest_date(spark: SparkSession, pipeline: Pipeline) -> dt.date:
    """The latest run date of the decisions table (what `lakeloop report` builds by default)."""
    _require_model(pipeline)
    decisions = _table(spark, pipeline, mt.DECISIONS)
    last = decisions.agg(F.max(mt.RUN_DATE)).first()[0] if decisions is not None else None
    if last is None:
        raise JobError(
            f"{pipeline.spec.table(mt.DECISIONS)} has no decision yet (at "
            f"{pipeline.table_path(mt.DECISIONS)}): {_monitor_hint(pipeline, 'D')}, then report"
        )
    return last


def _require_model(pipeline: Pipeline) -> None:
    if pipeline.spec.model is None or pipeline.spec.monitoring is None:
        raise JobError(f"pipeline {pipeline.name} has no `model`: there is no run report to build")


def collect(
    spark: SparkSession,
    pipeline: Pipeline,
    date: dt.date,
    *,
    facts: FactsSource | None = None,
    matured: MaturedSource | None = None,
) -> RunReport:
    """Everything the run report of `date` shows, as small pandas frames. `facts` and
    `matured` are where the registry facts and the matured predictions come from (default:
    MLflow and `monitoring.quality.matured`; tests pass small fakes)."""
    _require_model(pipeline)
    facts = facts or registry_facts
    matured = matured or _matured
    spec = pipeline.spec
    decisions = _table(spark, pipeline, mt.DECISIONS)
    if decisions is None:
        raise JobError(
            f"{spec.table(mt.DECISIONS)} does not exist at {pipeline.table_path(mt.DECISIONS)}: "
            f"no monitor run yet; {_monitor_hint(pipeline, date)}"
        )
    drift = _table(spark, pipeline, mt.DRIFT)
    empty_drift = spark.createDataFrame([], mt.DRIFT_SCHEMA)
    history = decision_history(decisions, drift if drift is not None else empty_drift).toPandas()
    day = history[history[mt.RUN_DATE] == date]
    if day.empty:
        known = sorted(history[mt.RUN_DATE], reverse=True)[:5]
        raise JobError(
            f"{spec.table(mt.DECISIONS)} has no decision for {date} (latest dates: "
            f"{', '.join(d.isoformat() for d in known) or 'none'}): "
            f"{_monitor_hint(pipeline, date)}"
        )
    decision = {k: _plain(v) for k, v in day.iloc[0].to_dict().items()}
    report = RunReport(
        pipeline=pipeline.name,
        date=date,
        task=spec.model.task,
        model_name=spec.model.name,
        psi_threshold=spec.monitoring.psi_threshold,
        metric=spec.model.promotion.metric,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        label=spec.model_label,
        decision=decision,
        evidence=_pretty(decision.get("evidence")),
        decisions=history[history[mt.RUN_DATE] <= date].reset_index(drop=True),
        index=index_from(history),
    )
    _data_quality(spark, pipeline, date, report)
    _profile(spark, pipeline, date, report)
    _drift(drift, date, report)
    _online(spark, pipeline, date, report)
    try:
        model_facts = facts(pipeline, decision["model_version"])
    except Exception as e:  # the registry is out of reach: the report still renders
        log.warning("no registry facts for the report: %s", e)
        model_facts = f"the registry could not be read ({type(e).__name__}: {e})"
    if isinstance(model_facts, str):
        report.notes["facts"] = model_facts
    else:
        report.facts = model_facts
    _correlations(spark, pipeline, report)
    collect_model(spark, pipeline, date, report, matured)
    _lineage(spark, pipeline, date, report)
    return report


def _pretty(evidence: str | None) -> str:
    if not evidence:
        return ""
    try:
        return json.dumps(json.loads(evidence), indent=2, sort_keys=True)
    except ValueError:
        return evidence


def _data_quality(spark: SparkSession, pipeline: Pipeline, date: dt.date, r: RunReport) -> None:
    dq = _table(spark, pipeline, mt.DATA_QUALITY)
    if dq is None:
        r.notes["dq"] = f"{pipeline.spec.table(mt.DATA_QUALITY)} does not exist yet"
        return
    day = of_run_date(dq, date)
    r.dq_days = _pandas(pass_rates(day))
    if r.dq_days is None:
        r.notes["dq"] = f"no validate run in the monitor's trend window of {date}"
        return
    reasons = quarantine_reasons(r.dq_days)
    r.dq_reasons = reasons if len(reasons) else None
    if r.dq_reasons is None:
        r.notes["reasons"] = "no row was quarantined in these days"


def _profile(spark: SparkSession, pipeline: Pipeline, date: dt.date, r: RunReport) -> None:
    spec = pipeline.spec
    silver_key = spec.features.source if spec.features else spec.expectations[0].silver
    silver = _table(spark, pipeline, silver_key)
    if silver is None:
        r.notes["missing"] = f"{spec.table(silver_key)} does not exist yet (run validate)"
    else:
        if INGEST_DATE in silver.columns:
            silver = silver.where(F.col(INGEST_DATE) == F.lit(date))
        columns = [c for c in silver.columns if not c.startswith("_")]
        r.missing_source = f"{spec.table(silver_key)}, rows ingested on {date}"
        r.missing = _pandas(missing_shares(silver, columns).where(F.col("rows") > 0))
        if r.missing is None:
            r.notes["missing"] = f"{spec.table(silver_key)} has no rows ingested on {date}"
    features = _table(spark, pipeline, spec.features.table) if spec.features else None
    if features is None:
        r.notes["distributions"] = "the feature table does not exist yet (run build_features)"
        return
    day = features.where(F.col(FEATURE_DATE) == F.lit(date))
    m = spec.model.features
    numeric = [c for c in m.numeric if c in day.columns]
    categorical = [c for c in m.categorical if c in day.columns]
    r.distributions_source = f"{spec.table(spec.features.table)}, feature rows of {date}"
    ranges = (
        {
            x.feature: (x.lo, x.hi)
            for x in value_ranges(day, numeric).collect()
            if x.lo is not None and x.hi is not None
        }
        if numeric
        else {}
    )
    if ranges:
        r.histograms = with_edges(bucket_counts(day, ranges).toPandas(), ranges)
    if categorical:
        r.categories = _pandas(category_counts(day, categorical))
    if r.histograms is None and r.categories is None:
        r.notes["distributions"] = (
            f"{spec.table(spec.features.table)} has no feature rows of {date}"
        )


def _drift(drift: DataFrame | None, date: dt.date, r: RunReport) -> None:
    if drift is None:
        r.notes["drift"] = "the drift table does not exist yet"
        return
    r.drift = _pandas(of_run_date(drift, date).orderBy(F.col("psi").desc_nulls_last()))
    if r.drift is None:
        r.notes["drift"] = f"no drift statistics for {date}"
    elif not (r.drift["kind"] == "prediction").any():
        r.notes["prediction_drift"] = f"no prediction drift row for {date}"


def _online(spark: SparkSession, pipeline: Pipeline, date: dt.date, r: RunReport) -> None:
    r.serves = pipeline.spec.serving is not None
    if not r.serves:
        return
    online = _table(spark, pipeline, mt.ONLINE)
    if online is not None:
        r.online = _pandas(of_run_date(online, date).orderBy("section", "model_alias", "feature"))
    if r.online is None:
        r.notes["online"] = (
            f"no online requests recorded for {date} (the monitor reads "
            f"{pipeline.spec.table(pipeline.spec.serving.log_table)}, written by `lakeloop serve`)"
        )


def _correlations(spark: SparkSession, pipeline: Pipeline, r: RunReport) -> None:
    f = r.facts
    if f is None:
        r.notes["correlation"] = r.notes.get("facts", "no model facts")
        return
    if not f.training_path or f.training_version is None:
        r.notes["correlation"] = (
            f"model {f.name} v{f.version} has no training-set lineage: no correlations"
        )
        return
    if not _exists(spark, f.training_path):
        r.notes["correlation"] = f"the training set {f.training_path} is gone"
        return
    ts = delta_io.read_version(spark, f.training_path, f.training_version)
    label = pipeline.spec.model_label
    numeric = [c for c in pipeline.spec.model.features.numeric if c in ts.columns]
    if label not in ts.columns or not numeric:
        r.notes["correlation"] = f"the training set has no label column {label!r}"
        return
    r.correlation_source = (
        f"{f.training_table or f.training_path} at Delta version {f.training_version} "
        f"(model v{f.version}'s training set)"
    )
    r.correlations = _pandas(correlations(ts, numeric, label))


def collect_model(
    spark: SparkSession, pipeline: Pipeline, date: dt.date, r: RunReport, matured: MaturedSource
) -> None:
    """The model section's data into `r`: matured-label plots, quality over time, shadow."""
    spec = pipeline.spec
    first = date - dt.timedelta(days=spec.monitoring.quality_days)
    quality = _table(spark, pipeline, mt.QUALITY)
    if quality is not None:
        r.quality = _pandas(latest_quality(quality, date))
    if r.quality is None:
        r.notes["quality"] = f"no quality metrics from matured labels up to {date} yet"
    elif not (r.quality["role"] == "challenger").any():
        r.notes["challenger_quality"] = "no challenger scored in shadow in this window"
    preds = _table(spark, pipeline, spec.model.predictions)
    if preds is None:
        r.notes["shadow"] = f"{spec.table(spec.model.predictions)} does not exist yet (run predict)"
    else:
        cls = r.task == "classification"
        champion = "probability" if cls else "prediction"
        day = preds.where(F.col(PREDICTION_DATE) == F.lit(date))
        r.shadow = _pandas(shadow_sample(day, champion, f"challenger_{champion}", spec.entity_keys))
        if r.shadow is None:
            r.notes["shadow"] = f"no challenger scored the predictions of {date} in shadow"
    try:
        m = matured(spark, pipeline, date).cache()
    except FileNotFoundError as e:
        r.notes["model"] = f"{e}: run predict first"
        return
    try:
        if r.task == "regression":
            res = with_residual(m)
            ranges = {
                x.feature: (x.lo, x.hi)
                for x in value_ranges(res, ["residual"]).collect()
                if x.lo is not None
            }
            if ranges:
                hist = with_edges(bucket_counts(res, ranges).toPandas(), ranges)
                r.matured_rows = int(hist["rows"].sum())
                r.residual_hist = hist
                r.residuals = _pandas(residual_sample(m, spec.entity_keys))
        else:
            counts = _pandas(classifier_counts(m))
            if counts is not None:
                r.confusion, buckets = confusion_and_buckets(counts)
                r.matured_rows = int(r.confusion["rows"].sum())
                r.roc, r.auc = roc_curve(buckets)
    finally:
        m.unpersist()
    if not r.matured_rows:
        r.notes["model"] = (
            f"no label has matured yet for the predictions of {first}..{date}: the "
            f"{'residual' if r.task == 'regression' else 'confusion matrix and ROC'} plots "
            "appear once labels arrive"
        )


def _lineage(spark: SparkSession, pipeline: Pipeline, date: dt.date, r: RunReport) -> None:
    also = [r.facts.train_run_id] if r.facts and r.facts.train_run_id else []
    r.lineage = _pandas(date_runs(runlog.runs(spark, pipeline), date, also))
    if r.lineage is None:
        r.notes["lineage"] = f"the run log has no run of {date}"


def index_from(history: pd.DataFrame) -> list[IndexRow]:
    """`decision_history` rows -> the index's rows, newest date first."""
    rows = history.sort_values(mt.RUN_DATE, ascending=False)
    return [
        IndexRow(
            date=x[mt.RUN_DATE],
            recommended=bool(x["retrain_recommended"]),
            rule=str(x["rule"]),
            in_cooldown=bool(x["in_cooldown"]),
            reason=str(x["reason"]),
            drifted=0 if pd.isna(x["drifted"]) else int(x["drifted"]),
            max_psi=None if pd.isna(x["max_psi"]) else float(x["max_psi"]),
        )
        for _, x in rows.iterrows()
    ]


def _plain(v: object) -> object:
    """A pandas/numpy scalar as a plain Python value (None for NaN/NaT)."""
    if v is None or (not isinstance(v, str | dt.date) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v
