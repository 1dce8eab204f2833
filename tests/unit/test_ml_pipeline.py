"""The model builder, its spec checks, the time split/folds, scoring and the promotion gate."""

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.regression import LinearRegression, RandomForestRegressor
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.config import ConfigError, SpecError
from lakeloop.ml import gate
from lakeloop.ml import pipeline as mlp
from lakeloop.ml.gate import decide, evaluate, evaluate_each, naive_baseline
from lakeloop.ml.tracking import ModelRef
from lakeloop.spec import ModelSpec
from lakeloop.transforms.modeling import (
    FOLD,
    ScoringModel,
    label_summary,
    model_input,
    scored_entities,
    split_by_time,
    with_time_folds,
)
from tests.conftest import spec_variant


def _spec(**over) -> ModelSpec:
    base = {
        "name": "m",
        "task": "regression",
        "features": {"numeric": ["x", "y"], "categorical": ["c"], "impute": {"y": "median"}},
        "estimator": {"type": "linear_regression", "grid": {"regParam": [0.0, 0.1]}},
        "predictions": "predictions",
    }
    base.update(over)
    return ModelSpec.model_validate(base)


def test_linear_pipeline_has_every_stage_in_order(spark, houses):
    spec = houses.spec.model
    p = mlp.build_pipeline(spec)
    stages = p.getStages()
    assert [type(s) for s in stages] == [
        Imputer,
        StringIndexer,
        OneHotEncoder,
        VectorAssembler,
        LinearRegression,
    ]
    imputer, indexer, _, assembler, lr = stages
    assert lr.getStandardization()  # MLlib scales inside the fit: no StandardScaler pass
    assert imputer.getInputCols() == [
        "lot_sqft",
        "zip_median_price_90d",
        "zip_median_price_per_sqft_90d",
    ]
    assert imputer.getStrategy() == "median"
    assert indexer.getInputCols() == ["zipcode", "condition"]
    assert indexer.getHandleInvalid() == "keep"  # unseen zipcodes still score
    assert "sqft" in assembler.getInputCols()
    assert mlp.imputed("lot_sqft") in assembler.getInputCols()
    assert lr.getMaxIter() == 50 and lr.getLabelCol() == mlp.LABEL
    grid = mlp.param_grid(p, spec)
    assert sorted(g[lr.getParam("regParam")] for g in grid) == [0.001, 0.01, 0.1]


def test_scale_true_adds_a_standard_scaler(spark):
    stages = mlp.build_pipeline(_spec(estimator={"type": "linear_regression", "scale": True}))
    assert [type(s) for s in stages.getStages()][-2:] == [StandardScaler, LinearRegression]


def test_tree_pipeline_indexes_but_does_not_encode_or_scale(spark):
    spec = _spec(estimator={"type": "random_forest", "params": {"numTrees": 5}})
    stages = mlp.build_pipeline(spec).getStages()
    assert [type(s) for s in stages] == [
        Imputer,
        StringIndexer,
        VectorAssembler,
        RandomForestRegressor,
    ]
    assert stages[-1].getNumTrees() == 5
    assert mlp.param_grid(mlp.build_pipeline(spec), spec) == [{}]


def test_logistic_pipeline_sets_probability_columns(spark):
    spec = _spec(task="classification", estimator={"type": "logistic_regression"})
    est = mlp.build_pipeline(spec).getStages()[-1]
    assert isinstance(est, LogisticRegression)
    assert est.getProbabilityCol() == mlp.PROBABILITY


@pytest.mark.parametrize(
    "estimator, message",
    [
        ({"type": "linear_regression", "params": {"maxDepth": 3}}, "has no such param"),
        ({"type": "linear_regression", "grid": {"numTrees": [3]}}, "grid.numTrees"),
        ({"type": "gbt", "params": {"labelCol": "y"}}, "set by lakeloop"),
        ({"type": "gbt", "params": {"maxDepth": "deep"}}, "model.estimator.params"),
    ],
)
def test_unknown_or_reserved_params_are_clear_errors(spark, estimator, message):
    with pytest.raises(mlp.ModelSpecError, match=message):
        mlp.build_pipeline(_spec(estimator=estimator))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["promotion"].update(metric="auc"), "is not a regression metric"),
        (lambda m: m["estimator"].update(type="logistic_regression"), "classification estimator"),
        (lambda m: m["features"].update(impute={"zipcode": "mean"}), "not numeric features"),
        (lambda m: m.update(predictions="nope"), "model.predictions: 'nope' is not a key"),
        (lambda m: m["features"].update(categorical=["sqft"]), "listed twice"),
    ],
)
def test_bad_model_sections_fail_at_load(cfg, tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        spec_variant(cfg, tmp_path, lambda d: edit(d["model"]))


def test_split_and_folds_follow_time(spark):
    rows = [(i, dt.datetime(2026, 1, 1) + dt.timedelta(days=i)) for i in range(10)]
    df = spark.createDataFrame(rows, "i int, t timestamp")
    train, test = split_by_time(df, "t", dt.date(2026, 1, 8), "UTC")
    assert [r.i for r in train.orderBy("i").collect()] == list(range(7))
    assert [r.i for r in test.orderBy("i").collect()] == [7, 8, 9]
    folds = with_time_folds(train, "t", [dt.datetime(2026, 1, 3), dt.datetime(2026, 1, 5)])
    assert [r[FOLD] for r in folds.orderBy("i").collect()] == [0, 0, 1, 1, 2, 2, 2]


def test_model_input_keeps_rows_with_features_and_checks_the_label(spark):
    df = spark.createDataFrame(
        [(1.0, 2.0, "a", True, True, dt.datetime(2026, 1, 1))] * 2
        + [(None, None, None, False, False, dt.datetime(2026, 1, 1))],
        "x double, y double, c string, lbl boolean, _has_features boolean, t timestamp",
    )
    out = model_input(df, _spec(), "lbl", "t")
    assert out.count() == 2 and out.schema[mlp.LABEL].dataType.simpleString() == "double"
    with pytest.raises(ValueError, match="numeric or boolean label"):
        model_input(df, _spec(), "c", "t")
    with pytest.raises(SpecError, match=r"^model.features.numeric \(x\): no such column in"):
        model_input(df.drop("x"), _spec(), "lbl", "t")


def _fitted(spark, spec):
    train = spark.createDataFrame(
        [(float(i), float(i % 3), "ab"[i % 2], 2.0 * i + 1) for i in range(30)],
        f"x double, y double, c string, {mlp.LABEL} double",
    )
    return mlp.build_pipeline(spec).fit(train)


def test_scored_entities_mark_missing_features_and_carry_model_ids(spark):
    spec = _spec(features={"numeric": ["x", "y"], "categorical": ["c"], "impute": {"y": "mean"}})
    champ = ScoringModel(_fitted(spark, spec), "m", 3, "run3")
    chall = ScoringModel(_fitted(spark, spec), "m", 4, "run4")
    entities = spark.createDataFrame(
        [
            ("e1", dt.datetime(2026, 1, 2), 1.0, None, "zz"),
            ("e2", dt.datetime(2026, 1, 2), None, 1.0, "a"),
        ],
        "id string, ts timestamp, x double, y double, c string",
    )
    out = scored_entities(entities, champ, chall, spec, "id", "ts", dt.date(2026, 1, 2))
    rows = {r.id: r for r in out.collect()}
    assert rows["e1"]._error is None and rows["e1"].prediction == pytest.approx(3.0, abs=0.2)
    assert rows["e1"].challenger_prediction == pytest.approx(rows["e1"].prediction)
    assert rows["e2"].prediction is None and rows["e2"]._error == "missing feature(s): x"
    assert {(r.model_name, r.model_version, r.model_run_id) for r in rows.values()} == {
        ("m", 3, "run3")
    }
    assert {r.challenger_version for r in rows.values()} == {4}
    alone = scored_entities(entities, champ, None, spec, "id", "ts", dt.date(2026, 1, 2))
    assert alone.columns == out.columns  # one schema with or without a challenger
    assert alone.where(F.col("challenger_prediction").isNotNull()).count() == 0
    assertDataFrameEqual(
        alone.select("id", "prediction", "prediction_date"),
        out.select("id", "prediction", "prediction_date"),
    )


MEAN = mlp.Baseline("training mean", 10.0)
BASE = {"rmse": 20.0, "mae": 16.0, "r2": -0.01}  # the baseline's metrics on the test window


def test_gate_thresholds_then_margin():
    spec = _spec(promotion={"metric": "rmse", "margin": 0.05, "thresholds": {"r2": {"min": 0.9}}})
    good = {"rmse": 10.0, "mae": 8.0, "r2": 0.95}
    first = decide(spec, good, MEAN, BASE)
    assert first.promoted and first.passed_gate and first.reason.startswith("first model")
    assert "beats the naive baseline (training mean: rmse 20)" in first.reason
    champ = ModelRef("m", 1, "r1")
    fine = {"rmse": 10.2, "mae": 8.0, "r2": 0.95}
    assert not decide(spec, good, MEAN, BASE, champ, fine).promoted  # 2% better < 5% margin
    won = decide(spec, good, MEAN, BASE, champ, {**fine, "rmse": 10.6})
    assert won.promoted and won.demoted is None and won.champion_score == 10.6
    weak = decide(spec, {**good, "r2": 0.5}, MEAN, BASE)
    assert not weak.promoted and not weak.passed_thresholds and "r2 0.5 < min 0.9" in weak.reason
    higher = _spec(
        task="classification",
        estimator={"type": "logistic_regression"},
        promotion={"metric": "auc", "margin": 0.0},
    )
    prior = mlp.Baseline("majority class 0, prior 0.3", 0.0, 0.3)
    base = {"auc": 0.5, "accuracy": 0.7, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    cls = {"auc": 0.8, "accuracy": 0.7, "precision": 0.7, "recall": 0.7, "f1": 0.7}
    assert decide(higher, cls, prior, base, champ, {**cls, "auc": 0.79}).promoted
    assert not decide(higher, cls, prior, base, champ, cls).promoted  # a tie keeps the champion


def test_a_model_worse_than_the_baseline_is_never_promoted():
    loose = _spec(promotion={"metric": "rmse", "thresholds": {"rmse": {"max": 1e9}}})
    worse = {"rmse": 26.0, "mae": 20.0, "r2": -0.73}
    d = decide(loose, worse, MEAN, BASE)
    assert not d.promoted and d.passed_thresholds and not d.beat_baseline and not d.passed_gate
    assert d.reason == (
        "does not beat the naive baseline (training mean): rmse 26 vs the baseline's 20 "
        "(promotion.baseline_margin 0.0%)"
    )
    assert not decide(loose, {**worse, "rmse": 20.0}, MEAN, BASE).promoted  # a tie loses
    # ... and with the thresholds failed too, the reason gives both
    strict = _spec(promotion={"metric": "rmse", "thresholds": {"r2": {"min": 0.5}}})
    both = decide(strict, worse, MEAN, BASE)
    assert "fails the spec's thresholds: r2 -0.73 < min 0.5; does not beat" in both.reason
    # baseline_margin is relative to the baseline: 10% better than 20 is rmse <= 18
    margin = _spec(promotion={"metric": "rmse", "baseline_margin": 0.1})
    assert not decide(margin, {**worse, "rmse": 18.5}, MEAN, BASE).promoted
    assert decide(margin, {**worse, "rmse": 18.0}, MEAN, BASE).promoted
    # higher is better: an AUC of 0.5 (the prior's) does not beat the baseline
    cls = _spec(task="classification", estimator={"type": "logistic_regression"})
    prior = mlp.Baseline("majority class 1, prior 0.6", 1.0, 0.6)
    base = {"auc": 0.5, "accuracy": 0.6, "precision": 0.6, "recall": 1.0, "f1": 0.75}
    coin = {"auc": 0.5, "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert "naive baseline (majority class 1" in decide(cls, coin, prior, base).reason


def test_a_champion_that_no_longer_passes_the_gate_is_demoted():
    tightened = _spec(promotion={"metric": "rmse", "thresholds": {"r2": {"min": 0.9}}})
    champ = ModelRef("m", 3, "r3")
    old = {"rmse": 12.0, "mae": 9.0, "r2": 0.85}  # passed r2 >= 0.8, fails r2 >= 0.9
    better = {"rmse": 9.0, "mae": 7.0, "r2": 0.95}
    d = decide(tightened, better, MEAN, BASE, champ, old)
    assert d.demoted == (
        "champion v3 no longer passes the gate on the test window: "
        "fails the spec's thresholds: r2 0.85 < min 0.9"
    )
    assert d.promoted and "no champion to beat (v3 was demoted)" in d.reason
    # the new model competes as if there were no champion: it must pass the gate itself
    weak = decide(tightened, {**better, "r2": 0.88}, MEAN, BASE, champ, old)
    assert weak.demoted and not weak.promoted and not weak.passed_gate
    # a champion worse than today's baseline goes too, whatever the thresholds say
    loose = _spec(promotion={"metric": "rmse", "thresholds": {}})
    stale = decide(loose, better, MEAN, BASE, champ, {**old, "rmse": 21.0})
    assert "v3 no longer passes the gate" in stale.demoted
    assert "does not beat the naive baseline (training mean): rmse 21" in stale.demoted
    # a champion that still passes stays, and the margin applies against it as before
    kept = decide(tightened, {**better, "rmse": 11.9}, MEAN, BASE, champ, {**old, "r2": 0.91})
    assert kept.demoted is None and kept.promoted
    with pytest.raises(ValueError, match="needs its metrics"):
        decide(tightened, better, MEAN, BASE, champ, None)


def _labels(spark, values):
    return spark.createDataFrame([(float(v),) for v in values], f"{mlp.LABEL} double")


def test_regression_baseline_is_the_better_of_training_mean_and_median(spark):
    spec = _spec(promotion={"metric": "rmse"})
    train = _labels(spark, [1, 2, 3, 4, 100])  # mean 22, median 3
    s = label_summary(train).first()
    assert (s["rows"], s["mean"], s["median"]) == (5, 22.0, 3.0)
    near_median = _labels(spark, [2, 3, 7])
    base, metrics = naive_baseline(spec, s["mean"], s["median"], near_median)
    assert base == mlp.Baseline("training median", 3.0)
    assert metrics["rmse"] == pytest.approx(((1 + 0 + 16) / 3) ** 0.5)
    assert metrics["mae"] == pytest.approx(5 / 3)
    assert metrics["r2"] == pytest.approx(1 - 17 / (1 + 4 + 9))  # test mean 4: SST 14
    near_mean = _labels(spark, [20, 22, 30])
    base, metrics = naive_baseline(spec, s["mean"], s["median"], near_mean)
    assert base == mlp.Baseline("training mean", 22.0)
    assert metrics["mae"] == pytest.approx(10 / 3)
    # the pick follows the promotion metric: on r2 (higher is better) the mean wins here too
    r2 = _spec(promotion={"metric": "r2"})
    assert naive_baseline(r2, s["mean"], s["median"], near_mean)[0].name == "training mean"


def test_classification_baseline_is_the_majority_class_with_the_prior(spark):
    spec = _spec(task="classification", estimator={"type": "logistic_regression"})
    s = label_summary(_labels(spark, [1, 0, 0, 0])).first()
    assert s["mean"] == 0.25
    test = _labels(spark, [0, 1, 0, 0, 1])
    base, metrics = naive_baseline(spec, s["mean"], s["median"], test)
    assert base == mlp.Baseline("majority class 0, prior 0.25", 0.0, 0.25)
    assert metrics["auc"] == pytest.approx(0.5)  # one score for every row
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["recall"] == 0.0 and metrics["precision"] == 0.0  # never predicts 1
    s = label_summary(_labels(spark, [1, 1, 1, 0])).first()
    base, metrics = naive_baseline(spec, s["mean"], s["median"], test)
    assert base == mlp.Baseline("majority class 1, prior 0.75", 1.0, 0.75)
    assert metrics["accuracy"] == pytest.approx(0.4) and metrics["recall"] == 1.0
    assert metrics["auc"] == pytest.approx(0.5)
    assert mlp.baselines(spec, 0.5, 0.5)[0].prediction == 0.0  # a tie: the negative class


def test_feature_weights_name_each_slot(spark):
    kind, coefs = mlp.feature_weights(_fitted(spark, _spec()))
    assert kind == "coefficient"
    assert set(coefs) == {"x", "y", "c=a", "c=b"}  # the indexer's unseen bucket is the zero vector
    assert coefs["x"] == pytest.approx(2.0, abs=0.05)  # label = 2x + 1
    forest = _fitted(spark, _spec(estimator={"type": "random_forest", "params": {"numTrees": 3}}))
    kind, imp = mlp.feature_weights(forest)
    assert kind == "importance" and set(imp) == {"x", "y", "c"}
    assert sum(imp.values()) == pytest.approx(1.0)


def test_time_folds_do_not_depend_on_the_local_time_zone(spark, monkeypatch):
    import time

    df = spark.createDataFrame(
        [
            (0, dt.datetime(2026, 1, 1, 23, tzinfo=dt.UTC)),
            (1, dt.datetime(2026, 1, 2, 4, tzinfo=dt.UTC)),
        ],
        "i int, t timestamp",
    )
    cut = [dt.datetime(2026, 1, 2, tzinfo=dt.UTC)]
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        for boundaries in (cut, [c.replace(tzinfo=None) for c in cut]):  # naive = UTC
            folds = with_time_folds(df, "t", boundaries).orderBy("i").collect()
            assert [r[FOLD] for r in folds] == [0, 1]
    finally:
        monkeypatch.undo()
        time.tzset()


def _scored(spark, task: str):
    """Predictions that are right on some rows and wrong on others (every metric in (0, 1))."""
    if task == "regression":
        rows = [(float(i % 7), float(i % 7) + (i % 3) - 1.0) for i in range(40)]
        return spark.createDataFrame(rows, f"{mlp.LABEL} double, {mlp.PREDICTION} double")
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql import types as T

    rows = []
    for i in range(40):
        p = ((i * 37) % 100) / 100  # scores that order the labels only partly
        label, pred = float(i % 3 == 0), float(p > 0.6)
        rows.append((label, pred, Vectors.dense([1 - p, p]), Vectors.dense([1 - p, p])))
    schema = T.StructType(
        [
            T.StructField(mlp.LABEL, T.DoubleType()),
            T.StructField(mlp.PREDICTION, T.DoubleType()),
            T.StructField(mlp.PROBABILITY, VectorUDT()),
            T.StructField(mlp.RAW_PREDICTION, VectorUDT()),
        ]
    )
    return spark.createDataFrame(rows, schema)


def _jobs(spark, fn):
    """fn()'s result and the Spark jobs it started."""
    sc = spark.sparkContext
    group = f"test-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "count jobs")
    try:
        out = fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return out, len(sc.statusTracker().getJobIdsForGroup(group))


@pytest.mark.parametrize(
    ("task", "estimator"),
    [("regression", "linear_regression"), ("classification", "logistic_regression")],
)
def test_evaluate_gives_each_evaluators_value_in_fewer_passes(spark, task, estimator):
    spec = _spec(task=task, estimator={"type": estimator})
    scored = _scored(spark, task).cache()
    try:
        each, each_jobs = _jobs(spark, lambda: evaluate_each(spec, scored))
        got, got_jobs = _jobs(spark, lambda: evaluate(spec, scored))
    finally:
        scored.unpersist()
    assert list(got) == list(spec.metrics)
    assert got == each  # the same values, bit for bit
    assert all(0.0 < v < 1.0 for k, v in got.items() if k not in ("rmse", "mae")), got
    assert got_jobs < each_jobs, (got_jobs, each_jobs)


def test_evaluate_without_a_jvm_takes_a_pass_per_metric(monkeypatch):
    calls = []
    monkeypatch.setattr(gate, "evaluate_each", lambda spec, df: calls.append(df) or {"rmse": 1.0})
    connect_like = SimpleNamespace(sparkSession=SimpleNamespace())  # no `_jvm`
    assert gate.evaluate(_spec(), connect_like) == {"rmse": 1.0}
    assert calls == [connect_like]


def test_hold_out_splits_caches_and_summarizes(spark):
    from lakeloop.jobs.train import hold_out

    spec = _spec()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = spark.createDataFrame(
        [
            (float(i), float(i % 3), "ab"[i % 2], start + dt.timedelta(days=i), float(v), "x")
            for i, v in enumerate([1, 2, 3, 4, 100, 7, 8])
        ],
        f"x double, y double, c string, t timestamp, {mlp.LABEL} double, extra string",
    )
    held = hold_out(rows, spec, "t", "UTC", dt.date(2026, 1, 6))  # the last 2 days test
    try:
        assert (held.train_rows, held.test_rows) == (5, 2)
        assert (held.mean, held.median) == (22.0, 3.0)
        assert held.train.columns == ["x", "y", "c", "t", mlp.LABEL]  # the model's columns
        assert "extra" in held.test.columns  # a champion may read other columns
        assert held.train.is_cached and held.test.is_cached
    finally:
        held.unpersist()
    assert not held.train.is_cached and not held.test.is_cached
