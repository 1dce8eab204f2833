"""The model as the spec describes it: a pure builder of an unfitted `pyspark.ml.Pipeline`, its
parameter grid, and the evaluators of the spec's metrics. No I/O here.

Stages, in order: Imputer (the spec's `impute` columns) -> StringIndexer per categorical column
(unseen and null categories go to an extra index) -> OneHotEncoder (linear models only; trees
split on the indices, which the assembler marks as nominal) -> VectorAssembler -> StandardScaler
(only with `scale: true`: linear and logistic regression standardize inside MLlib, which saves a
pass over the data per fit; trees need no scaling) -> the estimator. Intermediate columns carry
the `__ll_` prefix so they never clash with the training set's own columns."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Estimator, Pipeline, PipelineModel
from pyspark.ml.classification import (
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    Evaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.param import Params
from pyspark.ml.regression import GBTRegressor, LinearRegression, RandomForestRegressor
from pyspark.ml.tuning import ParamGridBuilder

from lakeloop.config import SpecError
from lakeloop.spec import LOWER_IS_BETTER, ModelSpec

PREFIX = "__ll_"
LABEL = f"{PREFIX}label"
FEATURES = f"{PREFIX}features"
PREDICTION = f"{PREFIX}prediction"
PROBABILITY = f"{PREFIX}probability"
RAW_PREDICTION = f"{PREFIX}raw_prediction"

ESTIMATORS: dict[tuple[str, str], type[Estimator]] = {
    ("regression", "linear_regression"): LinearRegression,
    ("regression", "random_forest"): RandomForestRegressor,
    ("regression", "gbt"): GBTRegressor,
    ("classification", "logistic_regression"): LogisticRegression,
    ("classification", "random_forest"): RandomForestClassifier,
    ("classification", "gbt"): GBTClassifier,
}
# Set by the builder; the spec may not override them.
_RESERVED = {"featuresCol", "labelCol", "predictionCol", "probabilityCol", "rawPredictionCol"}


class ModelSpecError(SpecError):
    """The spec's model section names something MLlib does not have."""


def imputed(column: str) -> str:
    return f"{PREFIX}imp_{column}"


def indexed(column: str) -> str:
    return f"{PREFIX}idx_{column}"


def encoded(column: str) -> str:
    return f"{PREFIX}ohe_{column}"


def input_columns(spec: ModelSpec) -> list[str]:
    """The training-set columns the pipeline reads (besides the label)."""
    return [*spec.features.numeric, *spec.features.categorical]


def required_columns(spec: ModelSpec) -> list[str]:
    """Numeric features that must not be null (not imputed; categoricals take nulls)."""
    return [c for c in spec.features.numeric if c not in spec.features.impute]


def _check_params(est: Params, params: dict, where: str) -> None:
    for name in params:
        if name in _RESERVED:
            raise ModelSpecError(f"model.estimator.{where}.{name}: set by lakeloop, not the spec")
        if not est.hasParam(name):
            known = sorted(p.name for p in est.params if p.name not in _RESERVED)
            raise ModelSpecError(
                f"model.estimator.{where}.{name}: {type(est).__name__} has no such param "
                f"(it has: {', '.join(known)})"
            )


def build_estimator(spec: ModelSpec) -> Estimator:
    cls = ESTIMATORS[(spec.task, spec.estimator.type)]
    est = cls(featuresCol=FEATURES, labelCol=LABEL, predictionCol=PREDICTION)
    if spec.task == "classification":
        # setters, not setParams: GBTClassifier.setParams takes neither keyword (PySpark 4.1)
        est.setProbabilityCol(PROBABILITY).setRawPredictionCol(RAW_PREDICTION)
    if spec.linear:
        est.setStandardization(True)  # MLlib's default, stated: this is the model's scaling
    _check_params(est, spec.estimator.params, "params")
    _check_params(est, spec.estimator.grid, "grid")
    if spec.estimator.params:
        try:
            est.setParams(**spec.estimator.params)
        except (TypeError, ValueError) as e:
            raise ModelSpecError(f"model.estimator.params: {e}") from None
    return est


def build_pipeline(spec: ModelSpec) -> Pipeline:
    """The unfitted pipeline for `spec` (reads the feature columns and LABEL)."""
    f = spec.features
    stages: list = []
    if f.impute:
        by_strategy: dict[str, list[str]] = {}
        for col, strategy in f.impute.items():
            by_strategy.setdefault(strategy, []).append(col)
        for strategy, cols in sorted(by_strategy.items()):
            stages.append(
                Imputer(inputCols=cols, outputCols=[imputed(c) for c in cols], strategy=strategy)
            )
    numeric = [imputed(c) if c in f.impute else c for c in f.numeric]
    categorical: list[str] = []
    if f.categorical:
        stages.append(
            StringIndexer(
                inputCols=f.categorical,
                outputCols=[indexed(c) for c in f.categorical],
                handleInvalid="keep",
                stringOrderType="alphabetAsc",  # stable indices whatever the frequencies
            )
        )
        categorical = [indexed(c) for c in f.categorical]
        if spec.linear:
            stages.append(
                # the indexer already maps unseen/null values to its own last index, so the
                # encoder knows every index; dropLast makes that `__unknown` the zero vector
                OneHotEncoder(
                    inputCols=categorical,
                    outputCols=[encoded(c) for c in f.categorical],
                    dropLast=True,
                    handleInvalid="error",
                )
            )
            categorical = [encoded(c) for c in f.categorical]
    assembled = f"{PREFIX}assembled" if spec.scaled else FEATURES
    stages.append(
        VectorAssembler(inputCols=numeric + categorical, outputCol=assembled, handleInvalid="error")
    )
    if spec.scaled:
        stages.append(
            StandardScaler(inputCol=assembled, outputCol=FEATURES, withMean=False, withStd=True)
        )
    stages.append(build_estimator(spec))
    return Pipeline(stages=stages)


def param_grid(pipeline: Pipeline, spec: ModelSpec) -> list[dict]:
    """The estimator's grid as ParamMaps (one empty map when the spec has no grid)."""
    est = pipeline.getStages()[-1]
    builder = ParamGridBuilder()
    for name, values in sorted(spec.estimator.grid.items()):
        builder = builder.addGrid(est.getParam(name), values)
    return builder.build()


def evaluator(spec: ModelSpec, metric: str) -> Evaluator:
    """An MLlib evaluator of one of the spec's metric names on the pipeline's columns."""
    if spec.task == "regression":
        return RegressionEvaluator(labelCol=LABEL, predictionCol=PREDICTION, metricName=metric)
    if metric == "auc":
        return BinaryClassificationEvaluator(
            labelCol=LABEL, rawPredictionCol=RAW_PREDICTION, metricName="areaUnderROC"
        )
    name = {
        "accuracy": "accuracy",
        "precision": "precisionByLabel",
        "recall": "recallByLabel",
        "f1": "fMeasureByLabel",
    }[metric]
    ev = MulticlassClassificationEvaluator(
        labelCol=LABEL, predictionCol=PREDICTION, metricName=name
    )
    if name.endswith("ByLabel"):
        ev.setMetricLabel(1.0)  # the positive class
    return ev


def better(metric: str, new: float, old: float, margin: float) -> bool:
    """True when `new` beats `old` by at least `margin` (relative to |old|)."""
    if metric in LOWER_IS_BETTER:
        return new <= old - margin * abs(old) and new < old
    return new >= old + margin * abs(old) and new > old


@dataclass(frozen=True)
class Baseline:
    """A naive model: the constant `prediction` for every row (and, for a classifier, the
    constant `probability` of the positive class)."""

    name: str
    prediction: float
    probability: float | None = None


def baselines(spec: ModelSpec, mean: float, median: float) -> list[Baseline]:
    """The naive models of the training labels (`mean`, `median`: of the training rows' label).
    Regression: the training mean and the training median (the gate keeps whichever scores
    better). Classification (0/1 labels, so `mean` is the prior): the majority class (0 on a
    tie), with the prior as the probability of class 1."""
    if spec.task == "regression":
        return [Baseline("training mean", mean), Baseline("training median", median)]
    majority = 1.0 if mean > 0.5 else 0.0
    return [Baseline(f"majority class {majority:g}, prior {mean:.4g}", majority, mean)]


def best_baseline(
    metric: str, scored: list[tuple[Baseline, dict[str, float]]]
) -> tuple[Baseline, dict[str, float]]:
    """The naive model that scores best on `metric` (the first of equals), with its metrics."""
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scored, key=lambda bm: bm[1][metric])


def best_cv_metric(spec: ModelSpec, avg_metrics: list[float]) -> float:
    """The best grid point's mean over the folds (CrossValidator picks the same one)."""
    pick = min if spec.tuning_metric in LOWER_IS_BETTER else max
    return float(pick(avg_metrics))


def feature_weights(model: PipelineModel) -> tuple[str, dict[str, float]]:
    """What the model says about its inputs, by assembled slot (e.g. `sqft`, `zipcode=98105`),
    largest magnitude first: ("importance", trees' featureImportances) or ("coefficient", linear
    models' signed coefficients on the features' own scale, not comparable across features
    unless `scale: true`); ("", {}) for a model that has neither."""
    fitted = model.stages[-1]
    if hasattr(fitted, "featureImportances"):
        kind, values = "importance", fitted.featureImportances.toArray()
    elif hasattr(fitted, "coefficients"):
        kind, values = "coefficient", fitted.coefficients.toArray()
    else:
        return "", {}
    names = _slot_names(model, len(values))
    pairs = sorted(zip(names, map(float, values), strict=True), key=lambda kv: -abs(kv[1]))
    return kind, dict(pairs)


def _slot_names(model: PipelineModel, n: int) -> list[str]:
    """Names of the assembled vector's slots, from the fitted stages' own metadata."""
    assembler = next(s for s in model.stages if type(s).__name__ == "VectorAssembler")
    names: list[str] = []
    labels: dict[str, list[str]] = {}
    for s in model.stages:
        if type(s).__name__ == "StringIndexerModel":
            for col, ls in zip(s.getInputCols(), s.labelsArray, strict=True):
                labels[indexed(col)] = list(ls)
    ohe = next((s for s in model.stages if type(s).__name__ == "OneHotEncoderModel"), None)
    for col in assembler.getInputCols():
        original = col.removeprefix(f"{PREFIX}imp_").removeprefix(f"{PREFIX}ohe_")
        original = original.removeprefix(f"{PREFIX}idx_")
        if ohe is not None and col.startswith(f"{PREFIX}ohe_"):
            cats = labels.get(indexed(original), []) + ["__unknown"]
            # dropLast=True: the last category is the all-zero vector
            names += [f"{original}={c}" for c in cats[:-1]]
        else:
            names.append(original)
    if len(names) != n:  # e.g. a category the encoder counted differently: keep positions
        names = [f"f{i}" for i in range(n)]
    return names
