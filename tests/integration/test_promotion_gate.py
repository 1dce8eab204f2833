"""The promotion gate on data that has the awkward property: a model worse than predicting the
training mean (its only feature is noise) must lose to the naive baseline whatever the absolute
thresholds say, and a champion promoted under loose thresholds is demoted at the next train once
the spec's thresholds are tightened. Small synthetic training sets written straight to the
training-set table (the `_synthetic` classification set of test_train_predict is reused)."""

import datetime as dt
import json
import logging
import random

import pytest
from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.jobs import train
from lakeloop.ml import tracking
from tests.conftest import spec_variant
from tests.integration.test_train_predict import CLASSIFIER, _synthetic, ml_config

ZONE = "America/New_York"  # UTC-5 in February
RUN = dt.date(2026, 3, 2)

NOISE_MODEL = {
    "name": "houses_noise",
    "task": "regression",
    # the only feature is unrelated to the price; a deep, unaveraged tree fits its noise
    "features": {"numeric": ["noise"], "categorical": []},
    "estimator": {
        "type": "random_forest",
        "params": {
            "numTrees": 1,
            "bootstrap": False,
            "featureSubsetStrategy": "all",
            "maxDepth": 12,
            "maxBins": 128,
            "seed": 1,
        },
    },
    "tuning": {"folds": 2, "metric": "rmse"},
    "test_days": 7,
    # loose enough that a gate of absolute bounds alone promotes it
    "promotion": {"metric": "rmse", "margin": 0.0, "thresholds": {"rmse": {"max": 1.0e7}}},
    "predictions": "predictions",
}


def _noise_training_set(spark, p) -> int:
    """Sales over the 28 local days up to RUN in New York, the price unrelated to `noise`; the
    last of them at 23:30 local time on RUN (04:30 UTC the next day), and two sales just
    after RUN's local midnight that the run must not see. Returns the rows dated <= RUN."""
    rng = random.Random(11)
    start = dt.datetime(2026, 2, 3, 17, 30, tzinfo=dt.UTC)  # 12:30 in New York
    times = [start + dt.timedelta(hours=6 * i) for i in range(108)]  # to Mar 2 06:30 local
    times += [dt.datetime(2026, 3, 3, 4, 30, tzinfo=dt.UTC)] * 3  # Mar 2 23:30 in New York
    after = [dt.datetime(2026, 3, 3, 5, 30, tzinfo=dt.UTC)] * 2  # Mar 3 00:30 in New York
    rows = [
        (f"S{i}", f"L{i}", t, rng.random(), rng.gauss(300_000, 60_000), True)
        for i, t in enumerate(times + after)
    ]
    spark.createDataFrame(
        rows,
        "sale_id string, listing_id string, sold_at timestamp, noise double, "
        "sale_price double, _has_features boolean",
    ).write.format("delta").mode("overwrite").save(p.table_path("training_set"))
    return len(times)


def test_a_model_worse_than_the_mean_is_never_promoted(spark, tmp_path):
    def edit(d):
        d.update(model=NOISE_MODEL, timezone=ZONE)

    p, _ = spec_variant(ml_config(tmp_path), tmp_path, edit)
    upto_run = _noise_training_set(spark, p)
    rec = train.run(spark, p, RUN)
    d = rec.details
    metrics, base = json.loads(d["metrics"]), json.loads(d["baseline_metrics"])
    # the property: the model is worse than a constant, and within the absolute bound
    assert metrics["r2"] < 0 and metrics["rmse"] < 1.0e7, metrics
    assert base["rmse"] < metrics["rmse"] and base["r2"] > metrics["r2"], (base, metrics)
    assert d["baseline"] in ("training mean", "training median")
    assert d["decision"] == "not promoted", d
    assert d["reason"].startswith(f"does not beat the naive baseline ({d['baseline']}): rmse ")
    assert float(d["baseline_score"]) == pytest.approx(base["rmse"], rel=1e-5)
    client = tracking.configure(p.cfg)
    assert tracking.by_alias(client, "houses_noise", tracking.CHAMPION) is None
    assert tracking.by_alias(client, "houses_noise", tracking.CHALLENGER) is None
    version = tracking.by_version(client, "houses_noise", int(d["model_version"]))
    logged = client.get_run(version.run_id).data.metrics
    assert {k: logged[f"baseline_test_{k}"] for k in base} == pytest.approx(
        base, rel=1e-5, abs=1e-6
    )
    assert logged["test_rmse"] > logged["baseline_test_rmse"]
    report = open(d["report"]).read()
    assert f"| metric | this model | naive baseline ({d['baseline']}) | threshold |" in report
    assert f"| rmse | {metrics['rmse']:.6g} | {base['rmse']:.6g} | max 1e+07 |" in report
    assert "NOT beaten by this model" in report and "**not promoted**" in report
    # local days in New York: the 23:30 sales of RUN count, the ones after midnight do not
    assert rec.input_counts["training_set"] == upto_run
    assert d["test_window"] == f"{RUN - dt.timedelta(days=6)}..{RUN}"
    assert rec.output_counts["train_rows"] + rec.output_counts["test_rows"] == upto_run


def test_tightened_thresholds_demote_the_champion_at_the_next_train(spark, tmp_path, caplog):
    loose = {**CLASSIFIER, "promotion": {"metric": "auc", "thresholds": {"auc": {"min": 0.7}}}}
    p, _ = spec_variant(ml_config(tmp_path), tmp_path, lambda d: d.update(model=loose))
    day = _synthetic(spark, p)
    first = train.run(spark, p, day)
    assert first.details["decision"] == "promoted", first.details
    assert first.details["baseline"].startswith("majority class")
    assert json.loads(first.details["baseline_metrics"])["auc"] == pytest.approx(0.5)
    champion_auc = json.loads(first.details["metrics"])["auc"]
    assert 0.7 <= champion_auc < 0.999

    tight = {**loose, "promotion": {"metric": "auc", "thresholds": {"auc": {"min": 0.999}}}}
    q, _ = spec_variant(p.cfg, tmp_path, lambda d: d.update(model=tight))
    with caplog.at_level(logging.WARNING, logger="lakeloop.jobs.train"):
        rec = train.run(spark, q, day)
    d, v1 = rec.details, first.details["model_version"]
    why = (
        f"champion v{v1} no longer passes the gate on the test window: fails the spec's "
        f"thresholds: auc {champion_auc:.4g} < min 0.999"
    )
    assert d["demoted"] == why and d["champion_version"] == v1
    # the new model then competes as if there were no champion: it fails the gate itself
    assert d["decision"] == "not promoted" and "auc" in d["reason"]
    client = tracking.configure(q.cfg)
    assert tracking.by_alias(client, "houses_expensive", tracking.CHAMPION) is None
    tag = client.get_model_version("houses_expensive", v1).tags[tracking.TAG_DEMOTED]
    assert tag == f"{day}, at the train of v{d['model_version']}: {why}"
    assert any(
        r.levelno == logging.WARNING and f"houses_expensive v{v1} demoted" in r.getMessage()
        for r in caplog.records
    )
    logged = (
        delta_io.read(spark, q.table_path("run_log"))
        .where(F.col("run_id") == rec.run_id)
        .first()
        .details
    )
    assert logged["demoted"] == why
    report = open(d["report"]).read()
    assert f"- **champion demoted**: {why}" in report
    assert f"| naive baseline ({d['baseline']}) | champion v{v1} | threshold |" in report
