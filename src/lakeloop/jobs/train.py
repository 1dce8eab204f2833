"""train: fit the spec's MLlib pipeline on the training set, track it in MLflow, register it,
and move the `champion` alias only through the promotion gate.

The training set is read at a pinned Delta version (logged, with its row count, the git sha and
the spec hash, so `lakeloop training-set --as-of <model version>` rebuilds it). Labels dated on
or before the run date are used; the last `model.test_days` days of label time are held out as
the test window, and CrossValidator tunes on time-ordered folds of the days before it. The new
model and the current champion are scored on that same window; the decision, both scores and
the reason go to the run log and to MLflow."""

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
from lakeloop.transforms.modeling import FOLD, model_input, split_by_time, with_time_folds
from lakeloop.transforms.training import HAS_FEATURES

log = logging.getLogger(__name__)
JOB = "train"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    passed_thresholds: bool
    reason: str
    metric: str
    new_score: float
    champion: tracking.ModelRef | None
    champion_score: float | None

    @property
    def outcome(self) -> str:
        return "promoted" if self.promoted else "not promoted"


def threshold_failures(spec: ModelSpec, metrics: dict[str, float]) -> list[str]:
    out = []
    for name, bound in sorted(spec.promotion.thresholds.items()):
        v = metrics[name]
        if bound.min is not None and not v >= bound.min:
            out.append(f"{name} {v:.4g} < min {bound.min:g}")
        if bound.max is not None and not v <= bound.max:
            out.append(f"{name} {v:.4g} > max {bound.max:g}")
    return out


def decide(
    spec: ModelSpec,
    metrics: dict[str, float],
    champion: tracking.ModelRef | None,
    champion_score: float | None,
) -> Decision:
    """The gate: thresholds first, then beat the champion by the margin on the same window."""
    metric = spec.promotion_metric
    new = metrics[metric]
    failed = threshold_failures(spec, metrics)
    if failed:
        reason = "fails the spec's thresholds: " + "; ".join(failed)
        return Decision(False, False, reason, metric, new, champion, champion_score)
    if champion is None:
        reason = "first model that meets the thresholds"
        return Decision(True, True, reason, metric, new, None, None)
    margin = spec.promotion.margin
    won = mlp.better(metric, new, champion_score, margin)
    verb = "beats" if won else "does not beat"
    reason = (
        f"{metric} {new:.6g} {verb} champion v{champion.version}'s {champion_score:.6g} "
        f"by the margin {margin:.1%} on the same test window"
    )
    return Decision(won, True, reason, metric, new, champion, champion_score)


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


def _input_stats(
    training_set: DataFrame, spec: ModelSpec, label: str, time_column: str, date: dt.date
) -> Row:
    """One pass over the whole training set: its row count (`total`, logged for lineage) and,
    over the labels dated on or before `date`, what the checks below need."""
    within = F.to_date(time_column) <= F.lit(date)
    has = within & (F.col(HAS_FEATURES) if HAS_FEATURES in training_set.columns else F.lit(True))
    return training_set.agg(
        F.count(F.lit(1)).alias("total"),
        F.count(F.when(within, 1)).alias("rows"),
        F.count(F.when(within & ~has, 1)).alias("without_features"),
        F.count(F.when(has & F.col(label).isNull(), 1)).alias("null_label"),
        F.max(F.when(within, F.to_date(time_column))).alias("last_day"),
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
    """The training set at its current Delta version, checked: labels up to `date`, binary
    labels for classification, no nulls in non-imputed features, something to impute from."""
    spec = pipeline.spec
    m, label, time_column = spec.model, spec.model_label, spec.model_time
    table = spec.table(spec.label.table)
    path = pipeline.table_path(spec.label.table)
    version = delta_io.version(spark, path)
    if version is None:
        raise JobError(f"{table} does not exist at {path}; run build_training_set first")
    training_set = delta_io.read_version(spark, path, version)
    upto = training_set.where(F.to_date(time_column) <= F.lit(date))
    try:
        rows = model_input(upto, m, label, time_column)  # checks the columns first
        stats = _input_stats(training_set, m, label, time_column, date)
    except SpecError as e:  # the spec names a column the training set lacks: exit 2
        raise SpecError(f"{table} v{version}: {e}") from None
    except ValueError as e:
        raise JobError(f"{table} v{version}: {e}") from None
    if stats["rows"] == 0:
        raise JobError(f"{table} v{version} has no labels dated on or before {date}")
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
        test_start = stats["last_day"] - dt.timedelta(days=m.test_days - 1)
        train, test = split_by_time(rows, time_column, test_start)
        # training needs only the model's columns; the (small) test window keeps them all
        train = train.select(*mlp.input_columns(m), time_column, mlp.LABEL).cache()
        test = test.cache()
        n_train, n_test = train.count(), test.count()
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
            client = tracking.configure(pipeline.cfg)
            champion = tracking.by_alias(client, m.name, tracking.CHAMPION)
            champion_score = None
            if champion is not None:
                scored = tracking.load(champion).transform(test)
                champion_score = float(mlp.evaluator(m, m.promotion_metric).evaluate(scored))
            result = TrainingResult(
                model=best,
                cv_results=[
                    ({p.name: v for p, v in pm.items()}, float(avg))
                    for pm, avg in zip(grid, cv_model.avgMetrics, strict=True)
                ],
                weights=mlp.feature_weights(best),
                metrics=metrics,
                decision=decide(m, metrics, champion, champion_score),
                lineage={
                    tracking.TAG_TABLE: table,
                    tracking.TAG_PATH: src.path,
                    tracking.TAG_VERSION: str(version),
                    tracking.TAG_ROWS: str(stats["total"]),
                },
                window=(test_start, stats["last_day"]),
            )
            ref = _track(client, pipeline, date, rec, result)
            _apply(client, ref, result.decision)
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
            test_window=f"{test_start}..{stats['last_day']}",
            metrics=json.dumps({k: round(v, 6) for k, v in metrics.items()}),
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
                **(
                    {f"champion_test_{decision.metric}": decision.champion_score}
                    if decision.champion_score is not None
                    else {}
                ),
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


def model_report(
    pipeline: Pipeline,
    date: dt.date,
    rec: runlog.RunRecord,
    ref: tracking.ModelRef,
    result: TrainingResult,
) -> str:
    """The model report a person reads: decision, scores, tuning, importances, lineage."""
    m = pipeline.spec.model
    d = result.decision
    champ = (
        f"v{d.champion.version}: {d.metric} {d.champion_score:.6g} on the same window"
        if d.champion
        else "none before this model"
    )
    lines = [
        f"# Model report: {ref.name} v{ref.version} ({pipeline.name}, {date})",
        "",
        f"- decision: **{'promoted to champion' if d.promoted else 'not promoted'}**: {d.reason}",
        f"- champion before: {champ}",
        f"- estimator: {m.estimator.type} ({m.task}); MLflow run {ref.run_id}",
        f"- test window (held out, by label time): {result.window[0]} .. {result.window[1]}; "
        f"{rec.output_counts['test_rows']} test rows, {rec.output_counts['train_rows']} "
        f"training rows, {rec.output_counts['rows_without_features']} labels without features",
        "",
        "## Test metrics",
        "",
        "| metric | value | threshold |",
        "|---|---|---|",
    ]
    for k, v in result.metrics.items():
        b = m.promotion.thresholds.get(k)
        bound = ""
        if b is not None:
            bound = " ".join(
                f"{n} {x:g}" for n, x in (("min", b.min), ("max", b.max)) if x is not None
            )
        lines.append(f"| {k} | {v:.6g} | {bound} |")
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


def _apply(client, ref: tracking.ModelRef, decision: Decision) -> None:
    """Move the aliases: a promoted model becomes `champion` (and any challenger alias goes);
    one that met the thresholds but lost becomes the `challenger`, scored in shadow."""
    client.set_model_version_tag(ref.name, str(ref.version), "decision", decision.reason)
    if decision.promoted:
        tracking.set_alias(client, ref, tracking.CHAMPION)
        tracking.delete_alias(client, ref.name, tracking.CHALLENGER)
        log.info("%s v%d is the champion: %s", ref.name, ref.version, decision.reason)
    elif decision.passed_thresholds:
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
