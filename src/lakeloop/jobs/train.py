"""train: fit the spec's MLlib pipeline on the training set, track it in MLflow, register it,
and move the `champion` alias only through the promotion gate.

The training set is read at a pinned Delta version (logged, with its row count, the git sha and
the spec hash, so `lakeloop training-set --as-of <model version>` rebuilds it). Labels dated on
or before the run date are used (dates: local days of the label time in the pipeline's
`timezone`); the last `model.test_days` days of label time are held out as the test window, and
CrossValidator tunes on time-ordered folds of the days before it. The new model, the naive
baseline (a constant of the training labels) and the current champion are scored on that same
window with the same evaluators; the gate (`decide`) demotes a champion that no longer meets
the spec's thresholds or beats the baseline, and promotes only a model that passes both and beats
the champion. The decision, all scores and the reason go to the run log, MLflow and the model
report."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass

import mlflow
import mlflow.spark
import pyspark
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.ml import PipelineModel
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog, session
from lakeloop.config import SpecError, mask
from lakeloop.jobs.common import JobError, main_for
from lakeloop.ml import pipeline as mlp
from lakeloop.ml import tracking
from lakeloop.spec import ModelSpec, Pipeline
from lakeloop.timezones import local_date
from lakeloop.transforms.modeling import (
    FOLD,
    label_summary,
    model_input,
    split_by_time,
    with_baseline_prediction,
    with_time_folds,
)
from lakeloop.transforms.training import HAS_FEATURES

log = logging.getLogger(__name__)
JOB = "train"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on a new model, with everything it compared on the test window."""

    promoted: bool
    passed_thresholds: bool
    beat_baseline: bool
    reason: str
    metric: str
    new_score: float
    baseline: mlp.Baseline
    baseline_metrics: dict[str, float]
    champion: tracking.ModelRef | None  # the champion before this run (demoted or not)
    champion_metrics: dict[str, float] | None
    demoted: str | None = None  # why `champion` no longer passes the gate: it loses the alias

    @property
    def outcome(self) -> str:
        return "promoted" if self.promoted else "not promoted"

    @property
    def passed_gate(self) -> bool:
        return self.passed_thresholds and self.beat_baseline

    @property
    def baseline_score(self) -> float:
        return self.baseline_metrics[self.metric]

    @property
    def champion_score(self) -> float | None:
        return None if self.champion_metrics is None else self.champion_metrics[self.metric]


def threshold_failures(spec: ModelSpec, metrics: dict[str, float]) -> list[str]:
    out = []
    for name, bound in sorted(spec.promotion.thresholds.items()):
        v = metrics[name]
        if bound.min is not None and not v >= bound.min:
            out.append(f"{name} {v:.4g} < min {bound.min:g}")
        if bound.max is not None and not v <= bound.max:
            out.append(f"{name} {v:.4g} > max {bound.max:g}")
    return out


def baseline_failure(
    spec: ModelSpec,
    metrics: dict[str, float],
    baseline: mlp.Baseline,
    baseline_metrics: dict[str, float],
) -> str | None:
    """Why `metrics` do not beat the naive baseline by `promotion.baseline_margin` on the
    promotion metric, or None when they do."""
    metric, margin = spec.promotion_metric, spec.promotion.baseline_margin
    new, base = metrics[metric], baseline_metrics[metric]
    if mlp.better(metric, new, base, margin):
        return None
    return (
        f"does not beat the naive baseline ({baseline.name}): {metric} {new:.6g} vs the "
        f"baseline's {base:.6g} (promotion.baseline_margin {margin:.1%})"
    )


def gate_failures(
    spec: ModelSpec,
    metrics: dict[str, float],
    baseline: mlp.Baseline,
    baseline_metrics: dict[str, float],
) -> list[str]:
    """Everything that keeps `metrics` from passing the gate (thresholds, then the baseline)."""
    failed = threshold_failures(spec, metrics)
    out = [f"fails the spec's thresholds: {'; '.join(failed)}"] if failed else []
    versus = baseline_failure(spec, metrics, baseline, baseline_metrics)
    return out + ([versus] if versus else [])


def decide(
    spec: ModelSpec,
    metrics: dict[str, float],
    baseline: mlp.Baseline,
    baseline_metrics: dict[str, float],
    champion: tracking.ModelRef | None = None,
    champion_metrics: dict[str, float] | None = None,
) -> Decision:
    """The gate, every metric on the same test window: the current champion is re-checked
    against the spec's thresholds and the baseline (demoted when it fails them, the new model
    then competes as if there were none); the new model must meet the thresholds and beat the
    naive baseline by `baseline_margin`, then beat the champion by `margin`."""
    metric = spec.promotion_metric
    new, base = metrics[metric], baseline_metrics[metric]
    args = (metric, new, baseline, baseline_metrics, champion, champion_metrics)
    demoted = None
    if champion is not None:
        if champion_metrics is None:
            raise ValueError("a champion needs its metrics on the test window")
        failed = gate_failures(spec, champion_metrics, baseline, baseline_metrics)
        if failed:
            demoted = (
                f"champion v{champion.version} no longer passes the gate on the test window: "
                + "; ".join(failed)
            )
    thresholds_failed = threshold_failures(spec, metrics)
    failed = gate_failures(spec, metrics, baseline, baseline_metrics)
    if failed:
        beat = baseline_failure(spec, metrics, baseline, baseline_metrics) is None
        return Decision(False, not thresholds_failed, beat, "; ".join(failed), *args, demoted)
    passes = (
        f"meets the thresholds and beats the naive baseline ({baseline.name}: {metric} {base:.6g})"
    )
    if champion is None or demoted:
        reason = (
            f"first model that {passes}"
            if champion is None
            else f"{passes}; no champion to beat (v{champion.version} was demoted)"
        )
        return Decision(True, True, True, reason, *args, demoted)
    margin = spec.promotion.margin
    old = champion_metrics[metric]
    won = mlp.better(metric, new, old, margin)
    verb = "beats" if won else "does not beat"
    reason = (
        f"{metric} {new:.6g} {verb} champion v{champion.version}'s {old:.6g} "
        f"by the margin {margin:.1%} on the same test window"
    )
    return Decision(won, True, True, reason, *args, demoted)


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


def evaluate(spec: ModelSpec, scored: DataFrame) -> dict[str, float]:
    return {m: float(mlp.evaluator(spec, m).evaluate(scored)) for m in spec.metrics}


def naive_baseline(
    spec: ModelSpec, mean: float, median: float, test: DataFrame
) -> tuple[mlp.Baseline, dict[str, float]]:
    """The naive baseline (`mlp.baselines` of the training labels' `mean` and `median`) that
    scores best on the promotion metric on `test`, with all its metrics from the same
    evaluators as the model's."""
    scored = [
        (b, evaluate(spec, with_baseline_prediction(test, b)))
        for b in mlp.baselines(spec, mean, median)
    ]
    return mlp.best_baseline(spec.promotion_metric, scored)


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
        train, test = split_by_time(rows, time_column, test_start, spec.timezone)
        # training needs only the model's columns; the (small) test window keeps them all
        train = train.select(*mlp.input_columns(m), time_column, mlp.LABEL).cache()
        test = test.cache()
        labels = label_summary(train).first()  # the row count and the baselines' constants
        n_train, n_test = labels["rows"], test.count()
        rec.output_counts.update(train_rows=n_train, test_rows=n_test)
        rec.output_counts["rows_without_features"] = stats["without_features"]
        if stats["without_features"]:
            log.warning(
                "%d of %d labels have no feature row within the look-back; they are not used",
                stats["without_features"],
                stats["rows"],
            )
        if n_train == 0 or n_test == 0:
            raise JobError(
                f"{table} v{version}: {n_train} training and {n_test} test rows with test window "
                f"{test_start}..{stats['last_day']}; both need rows (lower model.test_days?)"
            )
        try:
            # CrossValidator caches each fold's split itself; `train` is cached above
            folded = with_time_folds(
                train, time_column, _fold_boundaries(train, time_column, m.tuning.folds)
            )
            cv = CrossValidator(
                estimator=estimator,
                estimatorParamMaps=grid,
                evaluator=mlp.evaluator(m, m.tuning_metric),
                numFolds=m.tuning.folds,
                foldCol=FOLD,
                parallelism=pipeline.cfg.training.parallelism,
                seed=m.tuning.seed,
            )
            cv_model = cv.fit(folded)
            best: PipelineModel = cv_model.bestModel
            metrics = evaluate(m, best.transform(test))
            baseline, baseline_metrics = naive_baseline(m, labels["mean"], labels["median"], test)
            client = tracking.configure(pipeline.cfg)
            champion = tracking.by_alias(client, m.name, tracking.CHAMPION)
            champion_metrics = None
            if champion is not None:  # re-checked on every metric: the spec may have changed
                champion_metrics = evaluate(m, tracking.load(champion).transform(test))
            result = TrainingResult(
                model=best,
                cv_results=[
                    ({p.name: v for p, v in pm.items()}, float(avg))
                    for pm, avg in zip(grid, cv_model.avgMetrics, strict=True)
                ],
                weights=mlp.feature_weights(best),
                metrics=metrics,
                decision=decide(m, metrics, baseline, baseline_metrics, champion, champion_metrics),
                lineage={
                    tracking.TAG_TABLE: table,
                    tracking.TAG_PATH: src.path,
                    tracking.TAG_VERSION: str(version),
                    tracking.TAG_ROWS: str(stats["total"]),
                },
                window=(test_start, stats["last_day"]),
            )
            ref = _track(client, pipeline, date, rec, result)
            _apply(client, ref, result.decision, date)
        finally:
            train.unpersist()
            test.unpersist()
        decision = result.decision
        rec.details.update(
            model=m.name,
            model_version=str(ref.version),
            mlflow_run_id=ref.run_id,
            decision=decision.outcome,
            reason=decision.reason,
            metric=decision.metric,
            score=f"{decision.new_score:.6g}",
            champion_version=str(decision.champion.version) if decision.champion else "",
            champion_score=(
                "" if decision.champion_score is None else f"{decision.champion_score:.6g}"
            ),
            champion_metrics=_rounded(decision.champion_metrics or {}),
            demoted=decision.demoted or "",
            baseline=decision.baseline.name,
            baseline_score=f"{decision.baseline_score:.6g}",
            baseline_metrics=_rounded(decision.baseline_metrics),
            test_window=f"{test_start}..{stats['last_day']}",
            timezone=spec.timezone,
            metrics=_rounded(metrics),
        )
        report = (
            pipeline.root / "reports" / pipeline.name / "models" / f"{m.name}-v{ref.version}.md"
        )
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(mask(model_report(pipeline, date, rec, ref, result)))
        client.log_artifact(ref.run_id, str(report))
        rec.details["report"] = str(report)
    return rec


@dataclass(frozen=True)
class TrainingResult:
    model: PipelineModel
    cv_results: list[tuple[dict, float]]  # (grid point, mean tuning metric over the folds)
    weights: tuple[str, dict[str, float]]  # ("importance" | "coefficient", by feature)
    metrics: dict[str, float]
    decision: Decision
    lineage: dict[str, str]
    window: tuple[dt.date, dt.date]


def _rounded(metrics: dict[str, float]) -> str:
    return json.dumps({k: round(v, 6) for k, v in metrics.items()})


def _masked(values: dict[str, object]) -> dict[str, str]:
    """MLflow tags/params as text with secret values hidden (`config.mask`)."""
    return {k: mask(str(v)) for k, v in values.items()}


def _track(
    client, pipeline: Pipeline, date: dt.date, rec: runlog.RunRecord, result: TrainingResult
) -> tracking.ModelRef:
    """One MLflow run: tags (lineage, git sha, spec hash), params, metrics, the CV results,
    importances and decision as artifacts, and the Spark model, registered under the spec's
    name."""
    m = pipeline.spec.model
    decision = result.decision
    est = result.model.stages[-1]
    best_params = {
        p.name: v for p, v in est.extractParamMap().items() if p.name in m.estimator.grid
    }
    exp = tracking.experiment_id(client, pipeline.cfg, pipeline)
    with mlflow.start_run(experiment_id=exp, run_name=f"{JOB} {pipeline.name} {date}") as run:
        mlflow.set_tags(
            _masked(
                {
                    **result.lineage,
                    tracking.TAG_RUN_DATE: date.isoformat(),
                    tracking.TAG_RUN_ID: rec.run_id,
                    tracking.TAG_GIT_SHA: tracking.git_sha(pipeline.cfg.project_root),
                    tracking.TAG_SPEC_HASH: pipeline.spec_hash(),
                    "lakeloop.pipeline": pipeline.name,
                    "lakeloop.decision": decision.outcome,
                }
            )
        )
        mlflow.log_params(
            _masked(
                {
                    "task": m.task,
                    "estimator": m.estimator.type,
                    "label": pipeline.spec.model_label,
                    "features.numeric": ",".join(m.features.numeric),
                    "features.categorical": ",".join(m.features.categorical),
                    "features.impute": json.dumps(m.features.impute),
                    "scaled": m.scaled,
                    "folds": m.tuning.folds,
                    "tuning_metric": m.tuning_metric,
                    "parallelism": pipeline.cfg.training.parallelism,
                    "test_window": f"{result.window[0]}..{result.window[1]}",
                    "timezone": pipeline.spec.timezone,
                    "baseline": decision.baseline.name,
                    "promotion.baseline_margin": m.promotion.baseline_margin,
                    **{f"param.{k}": v for k, v in m.estimator.params.items()},
                    **{f"best.{k}": v for k, v in best_params.items()},
                }
            )
        )
        mlflow.log_metrics(
            {
                **{f"test_{k}": v for k, v in result.metrics.items()},
                f"cv_{m.tuning_metric}": mlp.best_cv_metric(m, [a for _, a in result.cv_results]),
                "train_rows": rec.output_counts["train_rows"],
                "test_rows": rec.output_counts["test_rows"],
                **{f"baseline_test_{k}": v for k, v in decision.baseline_metrics.items()},
                **{f"champion_test_{k}": v for k, v in (decision.champion_metrics or {}).items()},
            }
        )
        mlflow.log_dict(
            [{"params": p, m.tuning_metric: a} for p, a in result.cv_results], "cv_results.json"
        )
        kind, weights = result.weights
        if weights:
            mlflow.log_dict(weights, f"feature_{kind}s.json")
        mlflow.log_text(mask(decision.reason), "decision.txt")
        info = mlflow.spark.log_model(
            result.model,
            artifact_path=tracking.MODEL_ARTIFACT,
            registered_model_name=m.name,
            pip_requirements=[f"pyspark=={pyspark.__version__}"],
        )
    version = int(info.registered_model_version)
    log.info("registered %s v%d (run %s)", m.name, version, run.info.run_id)
    return tracking.ModelRef(m.name, version, run.info.run_id)


def _label_text(pipeline: Pipeline) -> str:
    spec = pipeline.spec
    lab = spec.label
    value = f"`{lab.expr}`" if lab.expr else lab.column
    where = "the entity's own table" if spec.label_on_entity else "label events"
    return f"{spec.model_label} = {value} from {spec.table(lab.source)} ({where})"


def model_report(
    pipeline: Pipeline,
    date: dt.date,
    rec: runlog.RunRecord,
    ref: tracking.ModelRef,
    result: TrainingResult,
) -> str:
    """The model report a person reads: decision, scores beside the naive baseline's and the
    champion's on the same window, tuning, importances, lineage."""
    m = pipeline.spec.model
    d = result.decision
    champ = (
        f"v{d.champion.version}: {d.metric} {d.champion_score:.6g} on the same window"
        if d.champion
        else "none before this model"
    )
    base = d.baseline
    constant = f"predicts {base.prediction:g}" + (
        f" with probability {base.probability:.4g}" if base.probability is not None else ""
    )
    beaten = "beaten" if d.beat_baseline else "NOT beaten"
    lines = [
        f"# Model report: {ref.name} v{ref.version} ({pipeline.name}, {date})",
        "",
        f"- decision: **{'promoted to champion' if d.promoted else 'not promoted'}**: {d.reason}",
        f"- naive baseline: {base.name} ({constant} for every row); {d.metric} "
        f"{d.baseline_score:.6g}, {beaten} by this model's {d.new_score:.6g} "
        f"(promotion.baseline_margin {m.promotion.baseline_margin:.1%})",
        f"- champion before: {champ}",
        *([f"- **champion demoted**: {d.demoted}"] if d.demoted else []),
        f"- estimator: {m.estimator.type} ({m.task}); MLflow run {ref.run_id}",
        f"- test window (held out, by label time, local days in {pipeline.spec.timezone}): "
        f"{result.window[0]} .. {result.window[1]}; "
        f"{rec.output_counts['test_rows']} test rows, {rec.output_counts['train_rows']} "
        f"training rows, {rec.output_counts['rows_without_features']} labels without features",
        f"- label: {_label_text(pipeline)}; null labels left out (label.on_null: "
        f"{pipeline.spec.label.on_null}): "
        f"{rec.input_counts.get('null_labels_dropped', 'not known')}",
        "",
        "## Test metrics",
        "",
    ]
    columns = ["metric", "this model", f"naive baseline ({base.name})"]
    if d.champion_metrics is not None:
        columns.append(f"champion v{d.champion.version}")
    columns.append("threshold")
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for k, v in result.metrics.items():
        b = m.promotion.thresholds.get(k)
        bound = ""
        if b is not None:
            bound = " ".join(
                f"{n} {x:g}" for n, x in (("min", b.min), ("max", b.max)) if x is not None
            )
        cells = [k, f"{v:.6g}", f"{d.baseline_metrics[k]:.6g}"]
        if d.champion_metrics is not None:
            cells.append(f"{d.champion_metrics[k]:.6g}")
        lines.append("| " + " | ".join([*cells, bound]) + " |")
    lines += [
        "",
        f"## Cross-validation ({m.tuning.folds} time-ordered folds, mean {m.tuning_metric})",
        "",
        "| params | " + m.tuning_metric + " |",
        "|---|---|",
    ]
    lines += [f"| {json.dumps(p) if p else '(defaults)'} | {a:.6g} |" for p, a in result.cv_results]
    kind, weights = result.weights
    if weights:
        title = {
            "importance": "Feature importances",
            "coefficient": "Coefficients by magnitude (each on its feature's own scale)",
        }[kind]
        lines += ["", f"## {title}, top 10", "", f"| feature | {kind} |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in list(weights.items())[:10]]
    lin = result.lineage
    lines += [
        "",
        "## Lineage",
        "",
        f"- training set: {lin[tracking.TAG_TABLE]} version {lin[tracking.TAG_VERSION]} "
        f"({lin[tracking.TAG_ROWS]} rows) at {lin[tracking.TAG_PATH]}",
        f"- rebuild it: `lakeloop training-set --pipeline {pipeline.name} --as-of {ref.version}`",
        f"- spec hash {pipeline.spec_hash()}, lakeloop run {rec.run_id}",
    ]
    return "\n".join(lines) + "\n"


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


def training_set_as_of(
    spark: SparkSession, pipeline: Pipeline, model_version: int
) -> tuple[DataFrame, tracking.Lineage, tuple[int, str]]:
    """The exact training set a registered model version learned from: its Delta table at the
    version logged with the model (time travel), checked against the logged row count, with
    (rows read, checksum) from one pass (`delta_io.checksum`)."""
    if pipeline.spec.model is None:
        raise JobError(f"pipeline {pipeline.name} has no `model` section")
    client = tracking.configure(pipeline.cfg)
    try:
        ref = tracking.by_version(client, pipeline.spec.model.name, model_version)
        lin = tracking.lineage(client, ref)
    except tracking.RegistryError as e:
        raise JobError(str(e)) from None
    try:
        df = delta_io.read_version(spark, lin.path, lin.delta_version)
        rows, checksum = delta_io.checksum(df)
    except (PySparkException, Py4JJavaError) as e:  # a vacuumed file: FILE_NOT_EXIST / JVM
        raise JobError(
            f"{lin.table} version {lin.delta_version} at {lin.path} cannot be read (vacuumed, "
            f"past log retention, or moved?): {str(e).splitlines()[0][:500]}"
        ) from None
    if rows != lin.rows:
        raise JobError(
            f"{lin.table} version {lin.delta_version} has {rows} rows but model "
            f"{ref.name} v{ref.version} was trained on {lin.rows}"
        )
    return df, lin, (rows, checksum)


def report(rec: runlog.RunRecord) -> None:
    d = rec.details
    sys.stdout.write(
        f"{d['model']} v{d['model_version']}: {d['decision']} ({d['reason']}); "
        f"test metrics {d['metrics']} on {d['test_window']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
