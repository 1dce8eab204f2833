"""Late-label quality: the join to the first label at or after the prediction, and the metrics
per model version / role / prediction date against scikit-learn on the same rows."""

from __future__ import annotations

import datetime as dt

import pytest
from sklearn import metrics as skm

from lakeloop.monitoring import quality

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def ts(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, tzinfo=dt.UTC)


PRED_SCHEMA = (
    "listing_id string, feature_ts timestamp, prediction_date date, prediction double, "
    "model_name string, model_version int, challenger_prediction double, "
    "challenger_version int"
)


def test_a_prediction_gets_the_first_label_at_or_after_it(spark):
    preds = spark.createDataFrame(
        [
            ("a", ts(1), D1, 10.0, "m", 1, None, None),
            ("b", ts(1), D1, 20.0, "m", 1, None, None),
            ("c", ts(2), D2, 30.0, "m", 1, None, None),
        ],
        PRED_SCHEMA,
    )
    labels = spark.createDataFrame(
        [
            ("a", ts(1, 6), 1.0),  # before the prediction: not its answer
            ("a", ts(5), 11.0),
            ("a", ts(9), 99.0),  # a later (second) sale: not the first answer
            ("b", ts(1), 21.0),  # at the same instant: answers it
        ],
        "listing_id string, label_ts timestamp, label double",
    )
    out = {
        r["listing_id"]: r["label"]
        for r in quality.with_labels(preds, labels, ["listing_id"]).collect()
    }
    assert out == {"a": 11.0, "b": 21.0, "c": None}


def test_regression_metrics_per_version_role_and_date_match_sklearn(spark):
    rows = [
        ("a", ts(1), D1, 10.0, "m", 1, 12.0, 2),
        ("b", ts(1), D1, 20.0, "m", 1, 18.0, 2),
        ("c", ts(1), D1, 33.0, "m", 1, 30.0, 2),
        ("d", ts(2), D2, 40.0, "m", 1, None, None),
        ("e", ts(2), D2, 50.0, "m", 1, None, None),
    ]
    labels = {"a": 11.0, "b": 22.0, "c": 30.0, "d": 41.0}  # e: not matured
    preds = spark.createDataFrame(rows, PRED_SCHEMA)
    lab = spark.createDataFrame(
        [(k, ts(20), v) for k, v in labels.items()],
        "listing_id string, label_ts timestamp, label double",
    )
    scored = quality.by_role(quality.with_labels(preds, lab, ["listing_id"]), "regression")
    got = {
        (r["model_version"], r["role"], r["prediction_date"], r["metric"]): r
        for r in quality.quality_metrics(scored, "regression", ("rmse", "mae", "r2")).collect()
    }
    y = [11.0, 22.0, 30.0]
    champ, chall = [10.0, 20.0, 33.0], [12.0, 18.0, 30.0]
    c1 = got[(1, "champion", D1, "rmse")]
    assert c1["value"] == pytest.approx(skm.root_mean_squared_error(y, champ), abs=1e-12)
    assert (c1["predictions"], c1["matured_labels"]) == (3, 3)
    assert got[(1, "champion", D1, "mae")]["value"] == pytest.approx(
        skm.mean_absolute_error(y, champ), abs=1e-12
    )
    assert got[(1, "champion", D1, "r2")]["value"] == pytest.approx(
        skm.r2_score(y, champ), abs=1e-12
    )
    assert got[(2, "challenger", D1, "rmse")]["value"] == pytest.approx(
        skm.root_mean_squared_error(y, chall), abs=1e-12
    )
    d2 = got[(1, "champion", D2, "rmse")]
    assert (d2["value"], d2["predictions"], d2["matured_labels"]) == (pytest.approx(1.0), 2, 1)
    assert got[(1, "champion", D2, "r2")]["value"] is None  # one label: R^2 undefined
    assert (2, "challenger", D2, "rmse") not in got  # no shadow score that day
    pooled = {
        (r["model_version"], r["role"]): (r["value"], r["matured_labels"])
        for r in quality.pooled(scored, "regression", "rmse").collect()
    }
    assert pooled[(1, "champion")][0] == pytest.approx(
        skm.root_mean_squared_error(y + [41.0], champ + [40.0]), abs=1e-12
    )
    assert pooled[(1, "champion")][1] == 4


def test_classification_metrics_and_exact_auc_with_ties(spark):
    y = [1, 0, 1, 1, 0, 0, 1, 0]
    p = [0.9, 0.8, 0.8, 0.6, 0.3, 0.3, 0.2, 0.1]  # ties at 0.8 and 0.3
    rows = [
        (f"k{i}", ts(1), D1, float(pi >= 0.5), pi, "m", 3, None, None, None)
        for i, pi in enumerate(p)
    ]
    preds = spark.createDataFrame(
        rows,
        "listing_id string, feature_ts timestamp, prediction_date date, prediction double, "
        "probability double, model_name string, model_version int, challenger_prediction "
        "double, challenger_probability double, challenger_version int",
    )
    lab = spark.createDataFrame(
        [(f"k{i}", ts(3), float(v)) for i, v in enumerate(y)],
        "listing_id string, label_ts timestamp, label double",
    )
    scored = quality.by_role(quality.with_labels(preds, lab, ["listing_id"]), "classification")
    got = {
        r["metric"]: r["value"]
        for r in quality.quality_metrics(
            scored, "classification", ("auc", "accuracy", "precision", "recall", "f1")
        ).collect()
    }
    yhat = [float(x >= 0.5) for x in p]
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert got["precision"] == pytest.approx(skm.precision_score(y, yhat))
    assert got["recall"] == pytest.approx(skm.recall_score(y, yhat))
    assert got["f1"] == pytest.approx(skm.f1_score(y, yhat))
    one_class = quality.quality_metrics(
        scored.where("label = 1.0"), "classification", ("auc",)
    ).first()
    assert one_class["value"] is None  # AUC needs both classes
