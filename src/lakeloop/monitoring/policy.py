"""The retrain policy (spec `retrain:`): from the numbers the monitor computed, whether to retrain,
which rule fired and why. Pure: the monitor job gathers the inputs (small: a few floats per
run) and writes the decision as one row of the decisions table.

Rules, checked in this order (all are evaluated; the first that fires names the decision):
- drift: PSI above `retrain.drift.psi` (default monitoring.psi_threshold) for any of the listed
  features (default monitoring.features, default every model feature) in at least `runs` of the
  champion's last `of_last` monitor runs (this one included);
- quality: the champion's metric on its matured labels, pooled over the quality window, worse
  than its own test-window score by more than `margin` (relative), once `min_labels` matured;
- new_labels: at least `new_labels` labels with a label time after the last training day.
Within `cooldown_days` after the last training run nothing is recommended (the row says what
would have fired)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lakeloop.monitoring.quality import LOWER_IS_BETTER
from lakeloop.spec import PipelineSpec

DRIFT, QUALITY, NEW_LABELS, NONE = "drift", "quality", "new_labels", "none"


@dataclass(frozen=True)
class PolicyInputs:
    run_date: dt.date
    # the champion's monitor runs, newest first, this one included: (run date, feature -> PSI)
    drift_runs: list[tuple[dt.date, dict[str, float]]]
    quality_value: float | None  # the champion's pooled metric on matured labels
    quality_labels: int  # matured labels behind it
    test_value: float | None  # the champion's own test-window score of that metric
    new_labels: int | None  # labels after the last training day (None: not counted)
    last_trained: dt.date | None  # the last successful train run's date


@dataclass(frozen=True)
class RetrainDecision:
    recommended: bool
    rule: str  # drift | quality | new_labels | none: the first rule that fired
    in_cooldown: bool
    reason: str
    evidence: dict = field(default_factory=dict)


def drift_features(spec: PipelineSpec) -> list[str]:
    rule = spec.retrain.drift
    return list((rule and rule.features) or spec.watched_features)


def quality_metric(spec: PipelineSpec) -> str:
    q = spec.retrain.quality
    return (q and q.metric) or spec.model.promotion_metric


def _drift(spec: PipelineSpec, x: PolicyInputs) -> tuple[bool, str, dict]:
    rule = spec.retrain.drift
    psi = rule.psi or spec.monitoring.psi_threshold
    watched = drift_features(spec)
    window = x.drift_runs[: rule.of_last]
    over = []
    for day, values in window:
        hot = sorted(f for f in watched if (values.get(f) or 0.0) > psi)
        if hot:
            over.append((day, hot))
    fired = len(over) >= rule.runs
    ev = {
        "psi_threshold": psi,
        "runs_over": len(over),
        "runs_needed": rule.runs,
        "of_last": rule.of_last,
        "runs_seen": len(window),
        "over": {d.isoformat(): f for d, f in over},
        "max_psi_today": max(
            (v for f, v in (x.drift_runs[0][1] if x.drift_runs else {}).items() if f in watched),
            default=None,
        ),
    }
    runs = ", ".join(f"{d} ({', '.join(f)})" for d, f in over)
    why = (
        f"PSI > {psi:g} in {len(over)} of the last {len(window)} monitor run(s) "
        f"(needs {rule.runs} of {rule.of_last})" + (f": {runs}" if over else "")
    )
    return fired, why, ev


def _quality(spec: PipelineSpec, x: PolicyInputs) -> tuple[bool, str, dict]:
    rule = spec.retrain.quality
    metric = quality_metric(spec)
    ev = {
        "metric": metric,
        "value": x.quality_value,
        "test_value": x.test_value,
        "matured_labels": x.quality_labels,
        "min_labels": rule.min_labels,
        "margin": rule.margin,
    }
    if x.quality_value is None or x.test_value is None or x.quality_labels < rule.min_labels:
        return False, f"{metric}: {x.quality_labels} matured label(s), {rule.min_labels} needed", ev
    if metric in LOWER_IS_BETTER:
        limit = x.test_value * (1 + rule.margin)
        worse = x.quality_value > limit
    else:
        limit = x.test_value * (1 - rule.margin)
        worse = x.quality_value < limit
    ev["limit"] = limit
    why = (
        f"{metric} {x.quality_value:.6g} on {x.quality_labels} matured labels vs "
        f"{x.test_value:.6g} on the test window (limit {limit:.6g}, margin {rule.margin:.0%})"
    )
    return worse, why, ev


def _new_labels(spec: PipelineSpec, x: PolicyInputs) -> tuple[bool, str, dict]:
    need = spec.retrain.new_labels
    ev = {"new_labels": x.new_labels, "needed": need}
    have = x.new_labels or 0
    return have >= need, f"{have} new label(s) since training (needs {need})", ev


def decide(spec: PipelineSpec, x: PolicyInputs) -> RetrainDecision:
    """The policy's decision for `x.run_date` (see the module doc)."""
    r = spec.retrain
    checks = []
    if r.drift:
        checks.append((DRIFT, _drift(spec, x)))
    if r.quality:
        checks.append((QUALITY, _quality(spec, x)))
    if r.new_labels:
        checks.append((NEW_LABELS, _new_labels(spec, x)))
    evidence = {name: {**ev, "fired": fired} for name, (fired, _, ev) in checks}
    fired = [(name, why) for name, (f, why, _) in checks if f]
    since = (x.run_date - x.last_trained).days if x.last_trained else None
    cooling = since is not None and since < r.cooldown_days
    evidence["cooldown"] = {
        "last_trained": x.last_trained.isoformat() if x.last_trained else None,
        "days_since": since,
        "cooldown_days": r.cooldown_days,
    }
    if not fired:
        reasons = "; ".join(why for _, (_, why, _) in checks) or "no rule configured"
        return RetrainDecision(False, NONE, cooling, f"no rule fired: {reasons}", evidence)
    name, why = fired[0]
    also = [n for n, _ in fired[1:]]
    extra = f" (also: {', '.join(also)})" if also else ""
    if cooling:
        return RetrainDecision(
            False,
            name,
            True,
            f"{name} fired but the model was trained {since} day(s) ago on {x.last_trained} "
            f"(cooldown {r.cooldown_days} days): {why}{extra}",
            evidence,
        )
    return RetrainDecision(True, name, False, f"{name}: {why}{extra}", evidence)
