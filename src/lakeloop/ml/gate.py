"""The promotion gate: a new model, the naive baseline and the current champion scored on the
same test window with the same evaluators, and the verdict on them.

`decide` demotes a champion that no longer meets the spec's thresholds or beats the naive
baseline, and promotes only a model that passes both and beats the champion by
`promotion.margin`. `naive_baseline` picks the baseline the gate compares against: the best of
`pipeline.baselines` (constants of the training labels) on the promotion metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pyspark.ml.evaluation import Evaluator
from pyspark.sql import DataFrame

from lakeloop.ml import pipeline as mlp
from lakeloop.ml.tracking import ModelRef
from lakeloop.spec import ModelSpec
from lakeloop.transforms.modeling import with_baseline_prediction


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
    champion: ModelRef | None  # the champion before this run (demoted or not)
    champion_metrics: dict[str, float] | None
    demoted: str | None = None  # why `champion` no longer passes the gate: it loses the alias
    parity: str | None = None  # why the online scorer's scores may not be trusted (ml/parity)

    @property
    def outcome(self) -> str:
        return "promoted" if self.promoted else "not promoted"

    @property
    def passed_gate(self) -> bool:
        return self.passed_thresholds and self.beat_baseline and self.parity is None

    def blocked(self, why: str) -> Decision:
        """This decision with the model barred from champion and challenger: `why` (the parity
        gate's failure) leads the reason."""
        return replace(self, promoted=False, parity=why, reason=f"blocked: {why}; {self.reason}")

    @property
    def baseline_score(self) -> float:
        return self.baseline_metrics[self.metric]

    @property
    def champion_score(self) -> float | None:
        return None if self.champion_metrics is None else self.champion_metrics[self.metric]


# The metrics one MLlib metrics object holds (RegressionEvaluator.getMetrics -> RegressionMetrics,
# MulticlassClassificationEvaluator.getMetrics -> MulticlassMetrics), each read by the JVM call the
# evaluator's `evaluate` makes for its metric name, with that evaluator's own label and beta.
_ONE_PASS: dict[str, Callable[[Any, Evaluator], float]] = {
    "rmse": lambda j, ev: j.rootMeanSquaredError(),
    "mae": lambda j, ev: j.meanAbsoluteError(),
    "r2": lambda j, ev: j.r2(),
    "accuracy": lambda j, ev: j.accuracy(),
    "precision": lambda j, ev: j.precision(ev.getMetricLabel()),
    "recall": lambda j, ev: j.recall(ev.getMetricLabel()),
    "f1": lambda j, ev: j.fMeasure(ev.getMetricLabel(), ev.getBeta()),
}


def evaluate(spec: ModelSpec, scored: DataFrame) -> dict[str, float]:
    """Every metric of the spec on `scored` (a model's or a baseline's predictions), from the
    spec's MLlib evaluators (`mlp.evaluator`). The metrics one MLlib metrics object holds
    (regression: rmse, mae, r2; classification: accuracy, precision, recall, f1) come from one
    pass over `scored` (the evaluators' own `getMetrics`: the values their `evaluate` returns)
    instead of a pass per metric; AUC takes its own. Without a JVM gateway (Spark Connect):
    `evaluate_each`."""
    if getattr(scored.sparkSession, "_jvm", None) is None:
        return evaluate_each(spec, scored)
    evaluators = {m: mlp.evaluator(spec, m) for m in spec.metrics}
    shared = [m for m in spec.metrics if m in _ONE_PASS]
    out = {m: float(ev.evaluate(scored)) for m, ev in evaluators.items() if m not in shared}
    if shared:
        first = evaluators[shared[0]]
        first._transfer_params_to_java()
        metrics = first._java_obj.getMetrics(scored._jdf)
        out.update({m: float(_ONE_PASS[m](metrics, evaluators[m])) for m in shared})
    return {m: out[m] for m in spec.metrics}


def evaluate_each(spec: ModelSpec, scored: DataFrame) -> dict[str, float]:
    """Every metric of the spec on `scored`, one evaluator `evaluate` (one pass) per metric."""
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
    champion: ModelRef | None = None,
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
