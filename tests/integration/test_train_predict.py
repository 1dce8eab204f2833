"""train -> MLflow registry + champion/challenger gate -> predict, on the generator's clean data
through the whole pipeline (files, real Kafka, validate, features, point-in-time training set),
and a classification spec on small synthetic tables."""

import datetime as dt
import json
import random
import uuid

import pytest
from mlflow.models import Model
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import cli, delta_io, runlog
from lakeloop.config import SpecError, load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import (
    build_features,
    build_training_set,
    ingest_files,
    ingest_kafka,
    predict,
    train,
    validate,
)
from lakeloop.jobs.common import JobError
from lakeloop.ml import tracking
from tests.conftest import ROOT, spec_variant

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
AS_OF = D3 + dt.timedelta(days=60)  # every sale (5-45 days after listing) has happened


def ml_config(tmp, **serving):
    """The test profile with its lakehouse, MLflow store, online store and model cache under
    `tmp`; `serving`: further serving.* settings."""
    return load_config(
        "test",
        {
            "lakehouse_root": str(tmp / "lakehouse"),
            "mlflow": {
                "tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                "artifact_root": str(tmp / "art"),
            },
            "serving": {
                "online_store": {"path": str(tmp / "online.db")},
                "model_cache": str(tmp / "models"),
                **serving,
            },
        },
        project_root=ROOT,
    )


@pytest.fixture(scope="module")
def ml_houses(spark, broker, tmp_path_factory):
    """Three clean days of houses in Los Angeles time (a third of a day's listings fall on the
    next UTC date), through to the training set as of AS_OF."""
    tmp = tmp_path_factory.mktemp("ml")
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"

    def edit(d):
        d["sources"]["kafka"][0].update(topic=topic)
        d["timezone"] = "America/Los_Angeles"

    p, path = spec_variant(ml_config(tmp), tmp, edit)
    gen.generate(p, start=D1, days=3, rows_per_day=250, malformed=0.0)
    for d in (D1, D2, D3):
        ingest_files.run(spark, p, d)
    ingest_kafka.run(spark, p, D3)
    for d in (D1, D2, D3):
        validate.run(spark, p, d)
    build_features.backfill(spark, p, D1, D3)
    build_training_set.run(spark, p, AS_OF)
    return p


@pytest.fixture(scope="module")
def champion(spark, ml_houses):
    """The first model trained: it must pass the thresholds and become the champion."""
    return train.run(spark, ml_houses, AS_OF)


def _client(p):
    return tracking.configure(p.cfg)


def test_first_model_meets_the_r2_floor_and_becomes_champion(spark, ml_houses, champion):
    p, d = ml_houses, champion.details
    floor = p.spec.model.promotion.thresholds["r2"].min
    assert floor >= 0.9  # the spec states a real floor (see its comment for how it was set)
    metrics = json.loads(d["metrics"])
    assert metrics["r2"] >= floor, metrics
    assert d["decision"] == "promoted" and d["champion_version"] == ""
    baseline = json.loads(d["baseline_metrics"])  # a constant: R^2 about 0 on the test window
    assert d["baseline"] in ("training mean", "training median") and baseline["r2"] <= 0.01
    assert champion.output_counts["test_rows"] > 30 and champion.output_counts["train_rows"] > 100
    client = _client(p)
    ref = tracking.by_alias(client, "houses_price", tracking.CHAMPION)
    assert ref is not None and ref.version == int(d["model_version"])
    run = client.get_run(ref.run_id)
    tags, params = run.data.tags, run.data.params
    ts_path = p.table_path("training_set")
    assert tags[tracking.TAG_PATH] == ts_path
    assert int(tags[tracking.TAG_VERSION]) == delta_io.version(spark, ts_path)
    assert int(tags[tracking.TAG_ROWS]) == delta_io.read(spark, ts_path).count()
    assert tags[tracking.TAG_SPEC_HASH] == p.spec_hash() and tags[tracking.TAG_GIT_SHA]
    assert params["estimator"] == "linear_regression" and "best.regParam" in params
    assert run.data.metrics["test_r2"] == pytest.approx(metrics["r2"])
    assert run.data.metrics["baseline_test_r2"] == pytest.approx(baseline["r2"], abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(ref.run_id)}
    assert {"model", "cv_results.json", "feature_coefficients.json"} <= artifacts
    coefs = json.load(open(client.download_artifacts(ref.run_id, "feature_coefficients.json")))
    assert coefs["sqft"] == pytest.approx(180.0, rel=0.1)  # true_price: 180 per sqft
    logged = runlog.runs(spark, p).where(F.col("run_id") == champion.run_id).first()
    assert logged.status == "succeeded" and logged.details["decision"] == "promoted"
    # the parity gate scored the test window online (the registered artifact, no JVM): equal
    assert float(d["parity_max_diff"]) <= 1e-12
    assert int(d["parity_rows"]) == champion.output_counts["test_rows"]
    assert run.data.metrics["parity_max_rel_diff"] <= 1e-12
    # the model's inputs, typed, for the online server (MLflow signature)
    model = Model.load(client.download_artifacts(ref.run_id, "model/MLmodel"))
    inputs = {c.name: (c.type.name, c.required) for c in model.signature.inputs.inputs}
    assert inputs["sqft"] == ("integer", True) and inputs["zipcode"] == ("string", False)
    assert inputs["lot_sqft"] == ("integer", False)  # imputed: may be null
    report = open(d["report"]).read()
    assert "promoted to champion" in report and "--as-of" in report
    assert f"naive baseline ({d['baseline']})" in report


def _variant(p, tmp_path, **model):
    def edit(data):
        data["model"].update(model)

    v, _ = spec_variant(p.cfg, tmp_path, edit)
    return v


def test_worse_challenger_is_not_promoted_and_is_scored_in_shadow(
    spark, ml_houses, champion, tmp_path
):
    weak = _variant(
        ml_houses,
        tmp_path,
        features={"numeric": ["bedrooms"], "categorical": []},
        promotion={"metric": "rmse", "margin": 0.01, "thresholds": {}},
        estimator={"type": "linear_regression", "grid": {"regParam": [0.0]}},
    )
    rec = train.run(spark, weak, AS_OF)
    d = rec.details
    assert d["decision"] == "not promoted", d
    assert d["champion_version"] == champion.details["model_version"]
    assert float(d["score"]) > float(d["champion_score"])  # rmse: the challenger is worse
    assert "does not beat champion" in d["reason"]
    client = _client(ml_houses)
    assert tracking.by_alias(client, "houses_price", tracking.CHAMPION).version == int(
        champion.details["model_version"]
    )
    assert tracking.by_alias(client, "houses_price", tracking.CHALLENGER).version == int(
        d["model_version"]
    )
    logged = runlog.runs(spark, ml_houses).where(F.col("run_id") == rec.run_id).first().details
    assert logged["score"] == d["score"] and logged["champion_score"] == d["champion_score"]

    out = predict.run(spark, ml_houses, D3)
    assert out.details["challenger_version"] == d["model_version"]
    rows = delta_io.read(spark, ml_houses.table_path("predictions")).where(
        F.col("prediction_date") == D3
    )
    assert rows.where("challenger_prediction is null or prediction is null").count() == 0
    assert {r.challenger_version for r in rows.select("challenger_version").collect()} == {
        int(d["model_version"])
    }


def test_model_below_the_thresholds_is_registered_but_not_promoted(
    spark, ml_houses, champion, tmp_path
):
    # a floor the champion meets (it is re-checked at every train) and bedrooms alone do not
    strict = _variant(
        ml_houses,
        tmp_path,
        features={"numeric": ["bedrooms"], "categorical": []},
        promotion={"metric": "rmse", "margin": 0.0, "thresholds": {"r2": {"min": 0.9}}},
        estimator={"type": "linear_regression", "grid": {"regParam": [0.1]}},
        tuning={"folds": 2},
    )
    client = _client(ml_houses)
    before = tracking.by_alias(client, "houses_price", tracking.CHALLENGER)
    rec = train.run(spark, strict, AS_OF)
    assert rec.details["decision"] == "not promoted"
    assert "fails the spec's thresholds: r2" in rec.details["reason"]
    assert rec.details["demoted"] == ""  # the champion still passes the gate: it stays
    champ = tracking.by_alias(client, "houses_price", tracking.CHAMPION)
    assert champ.version == int(champion.details["model_version"])
    assert tracking.by_alias(client, "houses_price", tracking.CHALLENGER) == before
    assert tracking.by_version(client, "houses_price", int(rec.details["model_version"]))


def test_predict_twice_gives_identical_rows_and_leaves_other_dates_alone(
    spark, ml_houses, champion
):
    p = ml_houses
    path = p.table_path("predictions")
    first = predict.run(spark, p, D1)
    predict.run(spark, p, D2)
    other = delta_io.read(spark, path).where(F.col("prediction_date") == D2).localCheckpoint()
    version = delta_io.version(spark, path)
    again = predict.run(spark, p, D1)
    assert delta_io.version(spark, path) == version + 1  # it did write again
    assert again.details["checksum"] == first.details["checksum"]
    assert again.output_counts["predictions"] == first.output_counts["predictions"]
    assertDataFrameEqual(delta_io.read(spark, path).where(F.col("prediction_date") == D2), other)
    day1 = delta_io.read(spark, path).where(F.col("prediction_date") == D1)
    features = delta_io.read(spark, p.table_path("features")).where(F.col("feature_date") == D1)
    assert day1.count() == features.count() == first.output_counts["predictions"]
    # every entity of the local day is scored, those on the next UTC date too
    silver = delta_io.read(spark, p.table_path("silver_listings"))
    of_day = silver.where(F.to_date(F.from_utc_timestamp("listed_at", p.spec.timezone)) == D1)
    assert of_day.where(F.to_date("listed_at") > D1).count() > 0
    assert (
        first.input_counts["entities"]
        == first.input_counts["feature_rows"]
        == of_day.count()
        == first.output_counts["predictions"]
    )
    ids = day1.select("model_name", "model_version", "model_run_id").distinct().collect()
    ref = tracking.by_alias(_client(p), "houses_price", tracking.CHAMPION)
    assert [tuple(r) for r in ids] == [("houses_price", ref.version, ref.run_id)]
    assert day1.where("prediction is null or _error is not null").count() == 0
    # a sanity check that the predictions are prices, not noise
    joined = (
        day1.join(delta_io.read(spark, p.table_path("training_set")), "listing_id")
        .agg(F.corr("prediction", "sale_price"))
        .first()[0]
    )
    assert joined > 0.95


def test_predict_without_a_champion_is_a_clear_error_and_writes_nothing(
    spark, ml_houses, tmp_path, caplog
):
    def edit(data):
        data["model"]["name"] = "houses_untrained"
        data["tables"]["predictions"] = "predictions.untrained"

    p, spec_file = spec_variant(ml_houses.cfg, tmp_path, edit)
    with pytest.raises(JobError, match="model houses_untrained has no `champion`"):
        predict.run(spark, p, D1)
    assert delta_io.version(spark, p.table_path("predictions")) is None
    tracking_uri = ml_houses.cfg.mlflow.tracking_uri
    code = predict.main(
        [
            "--pipeline",
            str(spec_file),
            "--date",
            D1.isoformat(),
            "--env",
            "test",
            "--set",
            f"lakehouse_root={p.root}",
            "--set",
            f"mlflow.tracking_uri={tracking_uri}",
        ]
    )
    assert code == 1
    assert "has no `champion` in the registry" in caplog.text
    assert "Traceback" not in caplog.text


def test_training_set_as_of_a_model_version_rebuilds_it(spark, ml_houses, champion, capsys):
    p = ml_houses
    path = p.table_path("training_set")
    version = int(champion.details["model_version"])
    rows_then, sum_then = delta_io.checksum(
        delta_io.read_version(spark, path, int(champion.details["training_set_version"]))
    )
    try:
        build_training_set.run(spark, p, D3 + dt.timedelta(days=20))  # a newer, smaller set
        assert delta_io.read(spark, path).count() < rows_then
        args = ["training-set", "--pipeline", str(p.source_file), "--env", "test"]
        args += ["--set", f"lakehouse_root={p.root}"]
        args += ["--set", f"mlflow.tracking_uri={p.cfg.mlflow.tracking_uri}"]
        assert cli.main([*args, "--as-of", str(version)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["rows_read"] == out["rows"] == rows_then
        assert out["checksum"] == sum_then
        assert out["delta_version"] == int(champion.details["training_set_version"])
        assert cli.main([*args, "--as-of", "999"]) == 1  # no such model version: a clear error
    finally:
        build_training_set.run(spark, p, AS_OF)


def test_train_failure_paths_are_clear(spark, ml_houses, tmp_path):
    no_set = _variant(ml_houses, tmp_path)
    no_set = type(no_set)(
        load_config("test", {"lakehouse_root": str(tmp_path / "empty")}, project_root=ROOT),
        no_set.spec,
    )
    with pytest.raises(JobError, match="run build_training_set first"):
        train.run(spark, no_set, AS_OF)
    with pytest.raises(JobError, match="no labels dated on or before 2025-12-01"):
        train.run(spark, ml_houses, dt.date(2025, 12, 1))
    unknown = _variant(ml_houses, tmp_path, estimator={"type": "gbt", "params": {"numTrees": 5}})
    with pytest.raises(SpecError, match="GBTRegressor has no such param"):
        train.run(spark, unknown, AS_OF)


# ---- a classification spec on small synthetic tables ------------------------------------


def _synthetic(spark, p, n=400, null_sqft_in_training=False):
    rng = random.Random(3)
    start = dt.datetime(2026, 2, 1)
    train_rows = []
    for i in range(n):
        sqft = rng.randint(800, 3200)
        cond = rng.choice(["poor", "good", "excellent"])
        score = sqft + {"poor": -300, "good": 0, "excellent": 400}[cond] + rng.gauss(0, 250)
        train_rows.append(
            (
                f"S{i}",
                f"L{i}",
                start + dt.timedelta(hours=2 * i),
                None if null_sqft_in_training and i == 5 else sqft,
                rng.randint(1, 5),
                cond,
                score > 2000,
                True,
            )
        )
    spark.createDataFrame(
        train_rows,
        "sale_id string, listing_id string, sold_at timestamp, sqft int, bedrooms int, "
        "condition string, expensive boolean, _has_features boolean",
    ).write.format("delta").mode("overwrite").save(p.table_path("training_set"))
    day = dt.date(2026, 3, 1)
    entities = [
        (f"N{i}", dt.datetime(2026, 3, 1, 10), day, rng.randint(800, 3200), 3, "good")
        for i in range(20)
    ] + [("N-missing", dt.datetime(2026, 3, 1, 11), day, None, 2, "unheard-of")]
    features = spark.createDataFrame(
        entities,
        "listing_id string, feature_ts timestamp, feature_date date, sqft int, bedrooms int, "
        "condition string",
    )
    features.write.format("delta").mode("overwrite").save(p.table_path("features"))
    # the entity table predict counts the day's entities in (features.source)
    features.select(
        "listing_id",
        F.col("feature_ts").alias("listed_at"),
        F.col("feature_date").alias("_ingest_date"),
    ).write.format("delta").mode("overwrite").save(p.table_path("silver_listings"))
    return day


CLASSIFIER = {
    "name": "houses_expensive",
    "task": "classification",
    "label": "expensive",
    "features": {"numeric": ["sqft", "bedrooms"], "categorical": ["condition"]},
    "estimator": {
        "type": "random_forest",
        "params": {"numTrees": 10, "seed": 1},
        "grid": {"maxDepth": [3, 5]},
    },
    "tuning": {"folds": 2, "metric": "auc"},
    "test_days": 7,
    "promotion": {"metric": "auc", "margin": 0.0, "thresholds": {"auc": {"min": 0.8}}},
    "predictions": "predictions",
}


def test_classification_spec_trains_and_scores(spark, tmp_path):
    p, _ = spec_variant(ml_config(tmp_path), tmp_path, lambda d: d.update(model=CLASSIFIER))
    day = _synthetic(spark, p)
    rec = train.run(spark, p, dt.date(2026, 3, 1))
    metrics = json.loads(rec.details["metrics"])
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1"}
    assert rec.details["decision"] == "promoted" and metrics["auc"] >= 0.8, rec.details
    # the parity gate: the online scorer gave Spark's probabilities (bit for bit here; the
    # last bits of a dense dot product follow the JVM's SIMD width, see serving/scorer.py)
    assert float(rec.details["parity_max_diff"]) <= 1e-12
    assert int(rec.details["parity_rows"]) > 30
    out = predict.run(spark, p, day)
    rows = delta_io.read(spark, p.table_path("predictions"))
    assert out.output_counts["predictions"] == rows.count() == 21
    assert rows.where("probability < 0 or probability > 1").count() == 0
    assert {r.prediction for r in rows.where("_error is null").collect()} <= {0.0, 1.0}
    missing = rows.where(F.col("listing_id") == "N-missing").first()
    assert missing.prediction is None and missing._error == "missing feature(s): sqft"
    assert out.output_counts["predictions.not_scored"] == 1


def test_online_scores_that_differ_from_spark_block_the_promotion(spark, tmp_path, monkeypatch):
    """A GBT classifier that passes every other check, scored online 1e-6 off Spark: it may
    become neither champion nor challenger, and the reason says why."""
    from lakeloop.serving import scorer

    real = scorer.PipelineScorer.score

    def off(self, records):
        return [
            scorer.Scored(s.prediction, tuple(x * (1 - 1e-6) for x in s.probability), s.raw)
            for s in real(self, records)
        ]

    monkeypatch.setattr(scorer.PipelineScorer, "score", off)
    gbt = {**CLASSIFIER, "name": "houses_parity"}
    gbt["estimator"] = {"type": "gbt", "params": {"maxIter": 10, "maxDepth": 3, "seed": 1}}
    p, _ = spec_variant(ml_config(tmp_path), tmp_path, lambda d: d.update(model=gbt))
    _synthetic(spark, p)
    rec = train.run(spark, p, dt.date(2026, 3, 1))
    d = rec.details
    assert json.loads(d["metrics"])["auc"] >= 0.8  # it would have been promoted
    assert d["decision"] == "not promoted", d
    assert d["reason"].startswith("blocked: online and batch scores differ"), d["reason"]
    assert 1e-9 < float(d["parity_max_diff"]) < 1e-5
    client = _client(p)
    assert tracking.by_alias(client, "houses_parity", tracking.CHAMPION) is None
    assert tracking.by_alias(client, "houses_parity", tracking.CHALLENGER) is None
    run = client.get_run(tracking.by_version(client, "houses_parity", 1).run_id)
    assert run.data.tags["lakeloop.decision"] == "not promoted"
    assert "blocked: online and batch scores differ" in open(d["report"]).read()


def test_nulls_or_a_non_binary_label_fail_training_with_the_column(spark, tmp_path):
    p, _ = spec_variant(ml_config(tmp_path), tmp_path, lambda d: d.update(model=CLASSIFIER))
    _synthetic(spark, p, n=60, null_sqft_in_training=True)
    with pytest.raises(JobError, match=r"null values in training rows: sqft=1 \(impute them"):
        train.run(spark, p, dt.date(2026, 3, 1))
    rated = {**CLASSIFIER, "label": "bedrooms"}  # 1..5: not a binary label
    q, _ = spec_variant(p.cfg, tmp_path, lambda d: d.update(model=rated))
    with pytest.raises(JobError, match="needs a 0/1 \\(or boolean\\) label; .* rows have another"):
        train.run(spark, q, dt.date(2026, 3, 1))
