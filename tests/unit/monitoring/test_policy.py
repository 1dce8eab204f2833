"""The retrain policy: each rule fires exactly when it says, the first that fires names the
decision, and nothing is recommended during the cooldown."""

from __future__ import annotations

import datetime as dt

import pytest

from lakeloop.monitoring import policy
from tests.conftest import spec_variant

D = dt.date(2026, 3, 10)


def _spec(cfg, tmp_path, **retrain):
    def edit(d):
        d["retrain"] = retrain
        d["monitoring"] = {"psi_threshold": 0.2}

    return spec_variant(cfg, tmp_path, edit)[0].spec


def _inputs(**kw) -> policy.PolicyInputs:
    base = dict(
        run_date=D,
        drift_runs=[(D, {"sqft": 0.05})],
        quality_value=None,
        quality_labels=0,
        test_value=None,
        new_labels=None,
        last_trained=D - dt.timedelta(days=30),
    )
    base.update(kw)
    return policy.PolicyInputs(**base)


def _runs(*psis: float, feature: str = "sqft") -> list:
    return [(D - dt.timedelta(days=i), {feature: p, "bedrooms": 0.01}) for i, p in enumerate(psis)]


def test_drift_fires_in_k_of_the_last_m_runs_only(cfg, tmp_path):
    spec = _spec(cfg, tmp_path, drift={"runs": 2, "of_last": 3}, quality=None, cooldown_days=7)
    fired = policy.decide(spec, _inputs(drift_runs=_runs(0.3, 0.1, 0.25)))
    assert (fired.recommended, fired.rule) == (True, "drift")
    assert fired.evidence["drift"]["runs_over"] == 2
    assert "sqft" in fired.reason
    # one run over the threshold in the window: not enough
    once = policy.decide(spec, _inputs(drift_runs=_runs(0.3, 0.1, 0.1)))
    assert (once.recommended, once.rule) == (False, "none")
    # the second one is outside the last 3 runs
    old = policy.decide(spec, _inputs(drift_runs=_runs(0.3, 0.1, 0.1, 0.9)))
    assert not old.recommended
    # exactly at the threshold is not over it
    edge = policy.decide(spec, _inputs(drift_runs=_runs(0.2, 0.2, 0.2)))
    assert not edge.recommended


def test_drift_watches_only_the_listed_features(cfg, tmp_path):
    spec = _spec(
        cfg, tmp_path, drift={"features": ["bedrooms"], "runs": 1, "of_last": 1}, quality=None
    )
    assert not policy.decide(spec, _inputs(drift_runs=_runs(0.9))).recommended
    hot = [(D, {"sqft": 0.0, "bedrooms": 0.5})]
    assert policy.decide(spec, _inputs(drift_runs=hot)).rule == "drift"


def test_quality_rule_compares_with_the_test_score_once_enough_labels_matured(cfg, tmp_path):
    spec = _spec(
        cfg, tmp_path, drift=None, quality={"metric": "rmse", "margin": 0.1, "min_labels": 30}
    )
    worse = _inputs(quality_value=23_000.0, quality_labels=40, test_value=20_000.0)
    d = policy.decide(spec, worse)
    assert (d.recommended, d.rule) == (True, "quality")
    assert d.evidence["quality"]["limit"] == pytest.approx(22_000.0)
    within = _inputs(quality_value=21_900.0, quality_labels=40, test_value=20_000.0)
    assert not policy.decide(spec, within).recommended
    few = _inputs(quality_value=90_000.0, quality_labels=29, test_value=20_000.0)
    assert not policy.decide(spec, few).recommended


def test_quality_rule_for_a_higher_is_better_metric(cfg, tmp_path):
    spec = _spec(
        cfg, tmp_path, drift=None, quality={"metric": "r2", "margin": 0.05, "min_labels": 1}
    )
    assert policy.decide(
        spec, _inputs(quality_value=0.90, quality_labels=5, test_value=0.97)
    ).recommended
    assert not policy.decide(
        spec, _inputs(quality_value=0.93, quality_labels=5, test_value=0.97)
    ).recommended


def test_new_labels_rule(cfg, tmp_path):
    spec = _spec(cfg, tmp_path, drift=None, quality=None, new_labels=100)
    assert policy.decide(spec, _inputs(new_labels=100)).rule == "new_labels"
    assert not policy.decide(spec, _inputs(new_labels=99)).recommended


def test_nothing_is_recommended_during_the_cooldown(cfg, tmp_path):
    spec = _spec(cfg, tmp_path, drift={"runs": 1, "of_last": 1}, quality=None, cooldown_days=7)
    hot = _runs(0.9)
    cooling = policy.decide(spec, _inputs(drift_runs=hot, last_trained=D - dt.timedelta(days=6)))
    assert (cooling.recommended, cooling.rule, cooling.in_cooldown) == (False, "drift", True)
    assert "cooldown 7 days" in cooling.reason
    after = policy.decide(spec, _inputs(drift_runs=hot, last_trained=D - dt.timedelta(days=7)))
    assert (after.recommended, after.in_cooldown) == (True, False)


def test_the_first_rule_that_fires_names_the_decision(cfg, tmp_path):
    spec = _spec(
        cfg,
        tmp_path,
        drift={"runs": 1, "of_last": 1},
        quality={"metric": "rmse", "min_labels": 1},
        new_labels=1,
    )
    d = policy.decide(
        spec,
        _inputs(
            drift_runs=_runs(0.5), quality_value=9.0, quality_labels=5, test_value=1.0, new_labels=5
        ),
    )
    assert d.rule == "drift" and "also: quality, new_labels" in d.reason


def test_bad_policy_specs_are_refused_at_load(cfg, tmp_path):
    from lakeloop.config import ConfigError

    with pytest.raises(ConfigError, match="runs .3. cannot exceed of_last .2."):
        _spec(cfg, tmp_path, drift={"runs": 3, "of_last": 2})
    with pytest.raises(ConfigError, match="not watched features"):
        _spec(cfg, tmp_path, drift={"features": ["nope"]})
    with pytest.raises(ConfigError, match="'auc' is not a regression metric"):
        _spec(cfg, tmp_path, quality={"metric": "auc"})
