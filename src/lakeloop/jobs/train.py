"""train: fit the spec's MLlib pipeline on the training set, track it in MLflow, register it,
and move the `champion` alias only through the promotion gate.

The training set is read at a pinned Delta version (logged, with its row count, the git sha and
the spec hash, so `lakeloop training-set --as-of <model version>` rebuilds it: ml/lineage.py).
Labels dated on or before the run date are used (dates: local days of the label time in the
pipeline's `timezone`); the last `model.test_days` days of label time are held out as the test
window, and CrossValidator tunes on time-ordered folds of the days before it. The new model, the
naive baseline (a constant of the training labels) and the current champion are scored on that
same window with the same evaluators; the gate (ml/gate.py) demotes a champion that no longer
meets the spec's thresholds or beats the baseline, and promotes only a model that passes both
and beats the champion. The decision, all scores and the reason go to the run log, MLflow
(ml/model_log.py) and the model report (reports/markdown.py)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass, replace

from mlflow.tracking import MlflowClient
from pyspark.ml import Estimator, PipelineModel
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog, session, storage
from lakeloop.config import SpecError, mask
from lakeloop.jobs.common import JobError, main_for
from lakeloop.ml import parity, tracking
from lakeloop.ml import pipeline as mlp
from lakeloop.ml.gate import Decision, decide, evaluate, naive_baseline
from lakeloop.ml.model_log import TrainingResult, input_signature, log_training_run, rounded
from lakeloop.monitoring import reference
from lakeloop.reports import markdown
from lakeloop.spec import ModelSpec, Pipeline
from lakeloop.timezones import local_date
from lakeloop.transforms.modeling import (
    FOLD,
    label_summary,
    model_input,
    split_by_time,
    with_time_folds,
)
from lakeloop.transforms.training import HAS_FEATURES

log = logging.getLogger(__name__)
JOB = "train"


def _fold_boundaries(train: DataFrame, time_column: str, folds: int) -> list[dt.datetime]:
    """Time cut points that split the training rows into `folds` slices of equal size."""
    secs = train.select(F.unix_timestamp(time_column).cast("double").alias("t"))
    qs = secs.approxQuantile("t", [i / folds for i in range(1, folds)], 0.0001)
    cuts = sorted({dt.datetime.fromtimestamp(q, dt.UTC) for q in qs})  # aware: UTC instants
    if len(cuts) != folds - 1:
        raise JobError(
            f"the training window has too few distinct label times for {folds} time folds; "
            "lower model.tuning.folds or add data"
        )
    return cuts


def _input_stats(
    training_set: DataFrame,
    spec: ModelSpec,
    label: str,
    time_column: str,
    date: dt.date,
    zone: str,
) -> Row:
    """One pass over the whole training set: its row count (`total`, logged for lineage) and,
    over the labels dated (in `zone`) on or before `date`, what the checks below need."""
    day = local_date(time_column, zone)
    within = day <= F.lit(date)
    has = within & (F.col(HAS_FEATURES) if HAS_FEATURES in training_set.columns else F.lit(True))
    return training_set.agg(
        F.count(F.lit(1)).alias("total"),
        F.count(F.when(within, 1)).alias("rows"),
        F.count(F.when(within & ~has, 1)).alias("without_features"),
        F.count(F.when(has & F.col(label).isNull(), 1)).alias("null_label"),
        F.max(F.when(within, day)).alias("last_day"),
        *[
            F.count(F.when(has & F.col(c).isNull(), 1)).alias(f"null:{c}")
            for c in mlp.required_columns(spec)
        ],
        *[F.count(F.when(has, F.col(c))).alias(f"values:{c}") for c in spec.features.impute],
        F.count(F.when(has & ~F.col(label).cast("double").isin(0.0, 1.0), 1)).alias("non_binary"),
    ).first()


@dataclass(frozen=True)
class HeldOut:
    """The training rows split at the test window, both parts cached (`unpersist` them):
    `train` keeps the model's input columns, the time column and LABEL; `test` every column (a
    champion trained on another spec may read others). `mean`/`median`: of the training labels,
    the naive baselines' constants."""

    train: DataFrame
    test: DataFrame
    train_rows: int
    test_rows: int
    mean: float | None
    median: float | None

    def unpersist(self) -> None:
        self.train.unpersist()
        self.test.unpersist()


def hold_out(
    rows: DataFrame, spec: ModelSpec, time_column: str, zone: str, test_start: dt.date
) -> HeldOut:
    """`rows` split at `test_start` (a local day in `zone`): the days before it train, the days
    from it on test. Both parts are cached; their counts and the label summary are taken."""
    train, test = split_by_time(rows, time_column, test_start, zone)
    train = train.select(*mlp.input_columns(spec), time_column, mlp.LABEL).cache()
    test = test.cache()
    labels = label_summary(train).first()
    return HeldOut(train, test, labels["rows"], test.count(), labels["mean"], labels["median"])


@dataclass(frozen=True)
class Tuned:
    """The tuned model and its scores on the test window, beside the naive baseline's."""

    model: PipelineModel  # the best grid point, refit on the whole training window
    cv_results: list[tuple[dict, float]]  # (grid point, mean tuning metric over the folds)
    weights: tuple[str, dict[str, float]]  # mlp.feature_weights
    metrics: dict[str, float]  # every metric of the spec on the test window
    baseline: mlp.Baseline
    baseline_metrics: dict[str, float]


def tune_and_score(
    held: HeldOut,
    estimator: Estimator,
    grid: list[dict],
    spec: ModelSpec,
    time_column: str,
    parallelism: int,
) -> Tuned:
    """CrossValidator over `grid` on time-ordered folds of `held.train` (`spec.tuning.folds`
    slices of equal size), the best grid point refit on all of it; that model and the naive
    baseline scored on `held.test` with the same evaluators."""
    train = held.train
    # CrossValidator caches each fold's split itself; `train` is cached by hold_out
    folded = with_time_folds(
        train, time_column, _fold_boundaries(train, time_column, spec.tuning.folds)
    )
    cv = CrossValidator(
        estimator=estimator,
        estimatorParamMaps=grid,
        evaluator=mlp.evaluator(spec, spec.tuning_metric),
        numFolds=spec.tuning.folds,
        foldCol=FOLD,
        parallelism=parallelism,
        seed=spec.tuning.seed,
    )
    cv_model = cv.fit(folded)
    best: PipelineModel = cv_model.bestModel
    metrics = evaluate(spec, best.transform(held.test))
    baseline, baseline_metrics = naive_baseline(spec, held.mean, held.median, held.test)
    return Tuned(
        model=best,
        cv_results=[
            ({p.name: v for p, v in pm.items()}, float(avg))
            for pm, avg in zip(grid, cv_model.avgMetrics, strict=True)
        ],
        weights=mlp.feature_weights(best),
        metrics=metrics,
        baseline=baseline,
        baseline_metrics=baseline_metrics,
    )


@dataclass(frozen=True)
class TrainingRows:
    table: str
    path: str
    version: int
    rows: DataFrame  # labels dated <= the run date that have features, + LABEL
    stats: Row  # of _input_stats; `total` is the whole table at `version`


def _training_rows(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> TrainingRows:
    """The training set at its current Delta version, checked: labels up to `date` (the
    local date of the label time in the pipeline's zone), binary labels for classification, no
    nulls in non-imputed features, something to impute from."""
    spec = pipeline.spec
    zone = spec.timezone
    m, label, time_column = spec.model, spec.model_label, spec.model_time
    table = spec.table(spec.label.table)
    path = pipeline.table_path(spec.label.table)
    version = delta_io.version(spark, path)
    if version is None:
        raise JobError(f"{table} does not exist at {path}; run build_training_set first")
    training_set = delta_io.read_version(spark, path, version)
    upto = training_set.where(local_date(time_column, zone) <= F.lit(date))
    try:
        rows = model_input(upto, m, label, time_column)  # checks the columns first
        stats = _input_stats(training_set, m, label, time_column, date, zone)
    except SpecError as e:  # the spec names a column the training set lacks: exit 2
        raise SpecError(f"{table} v{version}: {e}") from None
    except ValueError as e:
        raise JobError(f"{table} v{version}: {e}") from None
    if stats["rows"] == 0:
        raise JobError(f"{table} v{version} has no labels dated on or before {date} ({zone})")
    if m.task == "classification" and stats["non_binary"]:
        raise JobError(
            f"{table} v{version}: classification needs a 0/1 (or boolean) label; "
            f"{stats['non_binary']} rows have another value in {label}"
        )
    nulls = {c: stats[f"null:{c}"] for c in mlp.required_columns(m) if stats[f"null:{c}"]}
    if nulls or stats["null_label"]:
        raise JobError(
            f"{table} v{version}: null values in training rows: "
            + ", ".join(f"{c}={n}" for c, n in {**nulls, label: stats["null_label"]}.items() if n)
            + " (impute them with model.features.impute, or fix them upstream)"
        )
    empty = [c for c in m.features.impute if stats[f"values:{c}"] == 0]
    if empty:
        raise JobError(
            f"{table} v{version}: imputed feature(s) {empty} are null in every training row; "
            "there is nothing to impute from (drop them from model.features or fix upstream)"
        )
    return TrainingRows(table, path, version, rows, stats)


def _null_labels_dropped(spark: SparkSession, pipeline: Pipeline, src: TrainingRows) -> int | None:
    """The label rows build_training_set left out as null (`label.on_null: drop`) when it
    wrote the training set version trained on, from its run-log row (None: not known)."""
    run_id = delta_io.written_by(spark, src.path, src.version)
    if not run_id:
        return None
    found = runlog.runs(spark, pipeline).where(F.col("run_id") == run_id).first()
    counts = found["output_counts"] if found else None
    return (counts or {}).get(f"{pipeline.spec.label.table}.null_labels_dropped")


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    spec = pipeline.spec
    if spec.model is None or spec.label is None:
        raise JobError(f"pipeline {pipeline.name} has no `model` (and `label`) section to train")
    m, time_column = spec.model, spec.model_time
    spark = session.isolated(spark)
    parallelism = pipeline.cfg.training.parallelism
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        try:
            estimator = mlp.build_pipeline(m)
            grid = mlp.param_grid(estimator, m)
        except mlp.ModelSpecError as e:
            raise mlp.ModelSpecError(f"pipeline {pipeline.name}: {e}") from None
        src = _training_rows(spark, pipeline, date)
        rows, stats, table, version = src.rows, src.stats, src.table, src.version
        rec.input_counts[spec.label.table] = stats["rows"]
        rec.details["training_set_version"] = str(version)
        dropped = _null_labels_dropped(spark, pipeline, src)
        if dropped is not None:
            rec.input_counts["null_labels_dropped"] = dropped
        test_start = stats["last_day"] - dt.timedelta(days=m.test_days - 1)
        held = hold_out(rows, m, time_column, spec.timezone, test_start)
        try:
            rec.output_counts.update(train_rows=held.train_rows, test_rows=held.test_rows)
            rec.output_counts["rows_without_features"] = stats["without_features"]
            if stats["without_features"]:
                log.warning(
                    "%d of %d labels have no feature row within the look-back; they are not used",
                    stats["without_features"],
                    stats["rows"],
                )
            if held.train_rows == 0 or held.test_rows == 0:
                raise JobError(
                    f"{table} v{version}: {held.train_rows} training and {held.test_rows} test "
                    f"rows with test window {test_start}..{stats['last_day']}; both need rows "
                    "(lower model.test_days?)"
                )
            tuned = tune_and_score(held, estimator, grid, m, time_column, parallelism)
            best, metrics, test = tuned.model, tuned.metrics, held.test
            client = tracking.configure(pipeline.cfg)
            champion = tracking.by_alias(client, m.name, tracking.CHAMPION)
            champion_metrics = None
            if champion is not None:  # re-checked on every metric: the spec may have changed
                champion_metrics = evaluate(
                    m, tracking.load(champion, tracking.dfs_tmpdir(spark, pipeline)).transform(test)
                )
            decision = decide(
                m, metrics, tuned.baseline, tuned.baseline_metrics, champion, champion_metrics
            )
            result = TrainingResult(
                model=best,
                cv_results=tuned.cv_results,
                weights=tuned.weights,
                metrics=metrics,
                decision=decision,
                lineage={
                    tracking.TAG_TABLE: table,
                    tracking.TAG_PATH: src.path,
                    tracking.TAG_VERSION: str(version),
                    tracking.TAG_ROWS: str(stats["total"]),
                },
                window=(test_start, stats["last_day"]),
                signature=input_signature(rows.schema, m),
            )
            ref = log_training_run(
                client, pipeline, date, rec, result, tracking.dfs_tmpdir(spark, pipeline)
            )
            result = _parity_gate(client, ref, result, parity.spark_scores(best, test, m), rec)
            _apply(client, ref, result.decision, date)
            # what the monitor compares each day against: the features over the training set
            # (this version of it) and the model's scores on the test window
            profile = reference.profile(rows, best.transform(test), spec)
            reference.record(spark, pipeline, ref, profile, rec.run_id, version)
        finally:
            held.unpersist()
        rec.details.update(_details(ref, result, spec.timezone))
        text = mask(markdown.model_report(pipeline, date, rec, ref, result))
        rec.details["report"] = write_model_report(spark, client, pipeline, ref, text)
    return rec


def _parity_gate(
    client: MlflowClient,
    ref: tracking.ModelRef,
    result: TrainingResult,
    scores: parity.SparkScores,
    rec: runlog.RunRecord,
) -> TrainingResult:
    """The registered model scored online (its MLflow artifact, as `lakeloop serve` loads it)
    against Spark's scores of the same test rows: a difference bars it from both aliases."""
    checked = parity.check(client, ref, scores)
    rec.details["parity_rows"] = str(checked.rows)
    rec.details["parity_max_diff"] = f"{checked.max_diff:.3g}"
    if checked.max_diff < float("inf"):
        client.log_metric(ref.run_id, "parity_max_rel_diff", checked.max_diff)
    why = checked.failure()
    if why is None:
        return result
    log.error("%s v%d may not serve: %s", ref.name, ref.version, why)
    decision = result.decision.blocked(why)
    client.set_tag(ref.run_id, "lakeloop.decision", decision.outcome)
    client.log_text(ref.run_id, mask(decision.reason), "decision.txt")
    return replace(result, decision=decision)


def write_model_report(
    spark: SparkSession, client: MlflowClient, pipeline: Pipeline, ref: tracking.ModelRef, text: str
) -> str:
    """The model report at `<root>/reports/<pipeline>/models/<model>-v<version>.md` on the
    lakehouse storage (through the session's Hadoop FileSystem), and the same file as an
    artifact of the model's MLflow run; its URI."""
    name = f"{ref.name}-v{ref.version}.md"
    uri = pipeline.reports_uri("models", name)
    storage.write_text(spark, uri, text)
    client.log_text(ref.run_id, text, name)
    return uri


def _details(ref: tracking.ModelRef, result: TrainingResult, timezone: str) -> dict[str, str]:
    """The run log's record of the model, its scores and the gate's decision."""
    d = result.decision
    return {
        "model": ref.name,
        "model_version": str(ref.version),
        "mlflow_run_id": ref.run_id,
        "decision": d.outcome,
        "reason": d.reason,
        "metric": d.metric,
        "score": f"{d.new_score:.6g}",
        "champion_version": str(d.champion.version) if d.champion else "",
        "champion_score": "" if d.champion_score is None else f"{d.champion_score:.6g}",
        "champion_metrics": rounded(d.champion_metrics or {}),
        "demoted": d.demoted or "",
        "baseline": d.baseline.name,
        "baseline_score": f"{d.baseline_score:.6g}",
        "baseline_metrics": rounded(d.baseline_metrics),
        "test_window": f"{result.window[0]}..{result.window[1]}",
        "timezone": timezone,
        "metrics": rounded(result.metrics),
    }


def _apply(client, ref: tracking.ModelRef, decision: Decision, date: dt.date) -> None:
    """Move the aliases: a champion that no longer passes the gate loses `champion` (its
    version tagged with why); a promoted model becomes `champion` (and any challenger alias
    goes); one that passed the gate but lost to the champion becomes the `challenger`, scored
    in shadow."""
    if decision.demoted is not None:
        old = decision.champion
        tracking.demote(client, old, f"{date}, at the train of v{ref.version}: {decision.demoted}")
        log.warning(
            "%s v%d demoted, it is no longer the champion: %s",
            old.name,
            old.version,
            decision.demoted,
        )
    client.set_model_version_tag(ref.name, str(ref.version), "decision", decision.reason)
    if decision.promoted:
        tracking.set_alias(client, ref, tracking.CHAMPION)
        tracking.delete_alias(client, ref.name, tracking.CHALLENGER)
        log.info("%s v%d is the champion: %s", ref.name, ref.version, decision.reason)
    elif decision.passed_gate:
        tracking.set_alias(client, ref, tracking.CHALLENGER)
        log.info("%s v%d is the challenger: %s", ref.name, ref.version, decision.reason)
    else:
        log.warning("%s v%d not promoted: %s", ref.name, ref.version, decision.reason)


def report(rec: runlog.RunRecord) -> None:
    d = rec.details
    sys.stdout.write(
        f"{d['model']} v{d['model_version']}: {d['decision']} ({d['reason']}); "
        f"test metrics {d['metrics']} on {d['test_window']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
