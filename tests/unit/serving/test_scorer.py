"""The JVM-free scorer against Spark's own `transform`, for every estimator lakeloop trains (plus
multinomial logistic regression and `scale: true`), on data with the awkward properties: nulls in
an imputed int column whose mean truncates when cast back, nulls and NaN in an imputed double
column, a float and a bigint column, a boolean feature, a string and an int categorical with null
categories, and categories seen only at scoring time. Then the scorer's refusals."""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.linalg import DenseVector, SparseVector

from lakeloop.ml import pipeline as mlp
from lakeloop.serving.scorer import (
    PipelineScorer,
    Scored,
    ScoreInputError,
    ScorerError,
    _fma,
    max_relative_diff,
)
from lakeloop.spec import ModelSpec

SCHEMA = (
    "id int, rooms int, sqft double, year bigint, dist float, garage boolean, zip int, "
    "cond string, y_reg double, y_bin double, y_multi double"
)
FEATURES = {
    "numeric": ["rooms", "sqft", "year", "dist", "garage"],
    "categorical": ["zip", "cond"],
    "impute": {"rooms": "mean", "sqft": "median"},
}
ZIPS = {98101: 0.8, 98102: -0.5, 98103: 0.2}
CONDS = {"fair": 0.0, "good": 0.7, "poor": -0.9}
# name -> (task, estimator section, label column)
CASES = {
    "linear_regression": ("regression", {"type": "linear_regression"}, "y_reg"),
    "linear_regression_scaled": (
        "regression",
        {"type": "linear_regression", "scale": True, "params": {"regParam": 0.01}},
        "y_reg",
    ),
    "random_forest_regression": (
        "regression",
        {"type": "random_forest", "params": {"numTrees": 10, "maxDepth": 4, "seed": 3}},
        "y_reg",
    ),
    "gbt_regression": (  # 20 trees: GBT's dense dot over tree outputs needs real FMAs
        "regression",
        {"type": "gbt", "params": {"maxIter": 20, "maxDepth": 3, "seed": 3}},
        "y_reg",
    ),
    "logistic_regression": (
        "classification",
        {"type": "logistic_regression", "params": {"maxIter": 30}},
        "y_bin",
    ),
    "logistic_regression_multinomial": (
        "classification",
        {"type": "logistic_regression", "params": {"maxIter": 30, "family": "multinomial"}},
        "y_multi",
    ),
    "random_forest_classification": (
        "classification",
        {"type": "random_forest", "params": {"numTrees": 10, "maxDepth": 4, "seed": 3}},
        "y_bin",
    ),
    "gbt_classification": (
        "classification",
        {"type": "gbt", "params": {"maxIter": 10, "maxDepth": 4, "seed": 3}},
        "y_bin",
    ),
}
# no exp() on the way: these must agree bit for bit (logistic probabilities only to ~1e-16)
BIT_EXACT = {
    "linear_regression",
    "linear_regression_scaled",
    "random_forest_regression",
    "gbt_regression",
    "random_forest_classification",
}
NAN = float("nan")
# scored but never trained on: unseen int/string categories, null categories, null int and
# null/NaN double in the imputed columns, zeros (a sparse assembled vector), negative rooms
EXTRA = [
    (1000, None, 1800.0, 1990, 5.5, True, 98999, "excellent"),
    (1001, 3, None, 2001, 12.3, False, None, None),
    (1002, None, NAN, 1975, 0.1, True, 98101, "good"),
    (1003, 0, 0.0, 2000, 0.0, False, None, "unseen"),
    (1004, -2, 2500.5, 2019, 29.9, True, 98103, "poor"),
    (1005, None, None, 1960, 7.77, False, 98102, None),
]
COLUMNS = [f.split()[0] for f in SCHEMA.split(", ")]


def _training_rows(n: int = 300, seed: int = 11) -> list[tuple]:
    rnd = random.Random(seed)
    rows, scores = [], []
    for i in range(n):
        rooms, sqft = rnd.randint(1, 6), rnd.gauss(1500.0, 400.0)
        year, dist, garage = rnd.randint(1950, 2020), rnd.uniform(0.1, 30.0), rnd.random() < 0.5
        zip_ = rnd.choice([*ZIPS, None])
        cond = rnd.choice([*CONDS, None])
        score = (
            0.002 * sqft
            + 0.4 * rooms
            - 0.01 * (year - 1985)
            - 0.03 * dist
            + (0.6 if garage else 0.0)
            + ZIPS.get(zip_, 0.0)
            + CONDS.get(cond, 0.0)
            + rnd.gauss(0.0, 0.3)
        )
        u = rnd.random()
        rooms_v = None if rnd.random() < 0.12 else rooms
        sqft_v = None if u < 0.08 else NAN if u < 0.12 else sqft
        rows.append([i, rooms_v, sqft_v, year, dist, garage, zip_, cond])
        scores.append(score)
    cuts = statistics.quantiles(scores, n=6)  # tertiles at 2/6, 4/6; median at 3/6
    for row, s in zip(rows, scores, strict=True):
        row += [s, float(s > cuts[2]), float((s > cuts[1]) + (s > cuts[3]))]
    return [tuple(r) for r in rows]


def _scoring_rows() -> list[tuple]:
    return _training_rows()[:60] + [(*r, 0.0, 0.0, 0.0) for r in EXTRA]


@dataclass
class Fitted:
    path: Path
    spark_rows: list  # Spark's transform of the scoring rows, by id
    records: list[dict]  # the same rows as raw Python values (before Spark's float32 rounding)
    input_types: dict[str, str]
    trees: int | None  # the ensemble's tree count


def _spec(task: str, estimator: dict) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "m",
            "task": task,
            "features": FEATURES,
            "estimator": estimator,
            "predictions": "predictions",
        }
    )


@pytest.fixture(scope="module")
def models(spark, tmp_path_factory) -> dict[str, Fitted]:
    """Every case fitted once, saved, and Spark's transform of the scoring rows collected."""
    train_rows = _training_rows()
    train = spark.createDataFrame(train_rows, SCHEMA).cache()
    score_rows = _scoring_rows()
    scoring = spark.createDataFrame(score_rows, SCHEMA)
    input_types = {f.name: f.dataType.simpleString() for f in scoring.schema.fields}
    records = [dict(zip(COLUMNS, r, strict=True)) for r in score_rows]
    root = tmp_path_factory.mktemp("scorer_models")
    out = {}
    for name, (task, estimator, label) in CASES.items():
        model = mlp.build_pipeline(_spec(task, estimator)).fit(
            train.withColumn(mlp.LABEL, train[label])
        )
        model.save(str(root / name))
        rows = model.transform(scoring).orderBy("id").collect()
        trees = getattr(model.stages[-1], "trees", None)
        out[name] = Fitted(root / name, rows, records, input_types, trees and len(trees))
    train.unpersist()
    return out


def test_the_cases_cover_every_estimator_lakeloop_trains():
    assert {(task, est["type"]) for task, est, _ in CASES.values()} == set(mlp.ESTIMATORS)


@pytest.fixture(scope="module")
def jvm_lanes(spark) -> int | None:
    """Doubles per vector of the JVM's VectorBLAS (None: Spark's BLAS is not VectorBLAS). The
    bit-exact comparison sums dense dot products in the JVM's own lanes; the scorer's guess
    from the CPU flags (`jvm_simd_lanes`) can differ from it, e.g. where HotSpot keeps AVX-512
    off, which moves the last bits only (the 1e-9 contract holds either way)."""
    jvm = spark._jvm
    if jvm.dev.ludovic.netlib.blas.JavaBLAS.getInstance().getClass().getSimpleName() != (
        "VectorBLAS"
    ):
        return None
    return int(jvm.jdk.incubator.vector.DoubleVector.SPECIES_MAX.length())


@pytest.mark.parametrize("name", CASES)
def test_scores_match_spark_transform(models, jvm_lanes, name):
    m = models[name]
    scorer = PipelineScorer.load(m.path, m.input_types, simd_lanes=jvm_lanes)
    ours = scorer.score(m.records)
    assert len(ours) == len(m.spark_rows) == len(m.records)
    diffs = _diffs(m.spark_rows, ours)
    if scorer.task == "classification":
        assert scorer.num_classes == len(m.spark_rows[0][mlp.PROBABILITY])
        assert len(diffs) == 1 + 2 * scorer.num_classes
    else:
        assert all(s.probability is None and s.raw is None for s in ours)
    worst = max(diffs.values())
    print(f"\n{name} ({scorer.estimator}): max relative diff {worst:.3g} {diffs}")
    assert worst <= 1e-9, diffs
    if name in BIT_EXACT and jvm_lanes is not None:
        assert worst == 0.0, diffs


def _diffs(spark_rows: list, ours: list[Scored]) -> dict[str, float]:
    diffs = {
        "prediction": max_relative_diff(
            [r[mlp.PREDICTION] for r in spark_rows], [s.prediction for s in ours]
        )
    }
    for k in range(len(ours[0].probability or ())):
        diffs[f"probability[{k}]"] = max_relative_diff(
            [r[mlp.PROBABILITY][k] for r in spark_rows], [s.probability[k] for s in ours]
        )
        diffs[f"raw[{k}]"] = max_relative_diff(
            [r[mlp.RAW_PREDICTION][k] for r in spark_rows], [s.raw[k] for s in ours]
        )
    return diffs


@pytest.mark.parametrize(
    "name, stage, params",
    [
        ("linear_regression_scaled", "StandardScaler", {"withMean": True}),
        ("logistic_regression", "LogisticRegression", {"threshold": 0.3}),
        ("logistic_regression_multinomial", "LogisticRegression", {"thresholds": [0.5, 0.2, 0.3]}),
        ("random_forest_classification", "RandomForestClassifier", {"thresholds": [0.3, 0.7]}),
        ("gbt_classification", "GBTClassifier", {"thresholds": [0.6, 0.4]}),
    ],
)
def test_param_values_lakeloop_does_not_set_also_match_spark(
    spark, models, tmp_path, name, stage, params
):
    """A saved copy with `params` changed in its metadata, scored by Spark and by the scorer."""
    root = _copy(models, name, tmp_path)
    _edit_metadata(_stage(root, stage), lambda m: m["paramMap"].update(params))
    scoring = spark.createDataFrame(_scoring_rows(), SCHEMA)
    spark_rows = PipelineModel.load(str(root)).transform(scoring).orderBy("id").collect()
    original = [r[mlp.PREDICTION] for r in models[name].spark_rows]
    if stage != "StandardScaler":  # the thresholds move some predictions
        assert [r[mlp.PREDICTION] for r in spark_rows] != original
    ours = PipelineScorer.load(root, models[name].input_types).score(models[name].records)
    diffs = _diffs(spark_rows, ours)
    print(f"\n{name} with {params}: max relative diff {max(diffs.values()):.3g}")
    assert max(diffs.values()) <= 1e-9, diffs


def test_the_scoring_rows_have_the_awkward_properties(models):
    """Guards the data above: a test data change must not quietly drop what is under test."""
    linear = models["linear_regression"].spark_rows
    by_id = {r.id: r for r in linear}
    imputed_rooms = {by_id[i][mlp.imputed("rooms")] for i in (1000, 1002, 1005)}
    known = [r[1] for r in _training_rows() if r[1] is not None]
    mean = sum(known) / len(known)  # the Imputer(mean) surrogate of rooms
    assert mean != math.trunc(mean) and imputed_rooms == {math.trunc(mean)}  # int cast-back
    assert math.isnan(by_id[1002].sqft) and by_id[1002][mlp.imputed("sqft")] > 0
    kinds = {type(r[mlp.FEATURES]) for r in linear}
    assert kinds == {DenseVector, SparseVector}  # both arithmetic paths are exercised
    unknown = {r[mlp.indexed("zip")] for r in linear if r.zip in (None, 98999)}
    assert unknown == {3.0}  # null and unseen share the indexer's extra index
    assert by_id[1001].dist != 12.3  # float32 in Spark; the record holds the double 12.3
    assert models["gbt_regression"].trees == 20


def test_scorer_describes_the_model(models):
    m = models["logistic_regression_multinomial"]
    scorer = PipelineScorer.load(m.path, m.input_types)
    assert scorer.input_columns == ["rooms", "sqft", "zip", "cond", "year", "dist", "garage"]
    assert (scorer.task, scorer.num_classes, scorer.estimator) == (
        "classification",
        3,
        "LogisticRegressionModel",
    )
    m = models["linear_regression_scaled"]
    scorer = PipelineScorer.load(m.path, m.input_types)
    assert scorer.stages[-2:] == ("StandardScalerModel", "LinearRegressionModel")
    assert (scorer.task, scorer.num_classes) == ("regression", None)
    one = scorer.score([{**m.records[0], "not_a_feature": object()}])  # extra keys are ignored
    assert isinstance(one[0], Scored) and one == scorer.score(m.records[:1])


@pytest.mark.parametrize(
    "name", ["linear_regression", "random_forest_regression", "gbt_regression"]
)
def test_single_record_latency(models, name):
    m = models[name]
    scorer = PipelineScorer.load(m.path, m.input_types)
    recs = m.records * 4
    for r in recs[:20]:
        scorer.score([r])  # warm up
    t0 = time.perf_counter()
    for r in recs:
        scorer.score([r])
    per_record = (time.perf_counter() - t0) / len(recs) * 1e6
    print(f"\n{name}: {per_record:.1f} us per single-record score()")
    assert per_record < 1000  # the server's whole request budget is 2 ms


# --- refusals --------------------------------------------------------------------------------


def _copy(models, name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(models[name].path, dest)
    return dest


def _edit_metadata(folder: Path, edit) -> None:
    (part,) = (folder / "metadata").glob("part-*")
    meta = json.loads(part.read_text())
    edit(meta)
    part.write_text(json.dumps(meta) + "\n")
    (part.parent / f".{part.name}.crc").unlink(missing_ok=True)  # else Spark's reader refuses it


def _stage(root: Path, kind: str) -> Path:
    (folder,) = [p for p in (root / "stages").iterdir() if f"_{kind}_" in p.name]
    return folder


def test_an_unknown_stage_class_is_refused_by_name(models, tmp_path):
    root = _copy(models, "linear_regression", tmp_path)
    bucketizer = "org.apache.spark.ml.feature.Bucketizer"
    _edit_metadata(_stage(root, "OneHotEncoder"), lambda m: m.update({"class": bucketizer}))
    with pytest.raises(ScorerError, match=r"stage 3: .*feature\.Bucketizer is not a stage"):
        PipelineScorer.load(root, models["linear_regression"].input_types)


@pytest.mark.parametrize("kind", ["LinearRegression", None])
def test_a_model_saved_by_spark_3_is_refused(models, tmp_path, kind):
    root = _copy(models, "linear_regression", tmp_path)
    folder = root if kind is None else _stage(root, kind)
    _edit_metadata(folder, lambda m: m.update(sparkVersion="3.5.0"))
    with pytest.raises(ScorerError, match=r"saved with Spark 3\.5\.0; .* Spark 4\.x"):
        PipelineScorer.load(root, models["linear_regression"].input_types)


@pytest.mark.parametrize(
    "stage, param, value, message",
    [
        ("Imputer", "strategy", "knn", "ImputerModel param strategy='knn' is not supported"),
        ("Imputer", "missingValue", "zero", "ImputerModel param missingValue='zero'"),
        ("StringIndexer", "handleInvalid", "fuzzy", "StringIndexerModel param handleInvalid"),
        ("StandardScaler", "withStd", "yes", "StandardScalerModel param withStd='yes'"),
    ],
)
def test_a_param_value_the_scorer_does_not_implement_is_refused(
    models, tmp_path, stage, param, value, message
):
    root = _copy(models, "linear_regression_scaled", tmp_path)
    folder = next(p for p in (root / "stages").iterdir() if f"_{stage}_" in p.name)
    _edit_metadata(folder, lambda m: m["paramMap"].update({param: value}))
    with pytest.raises(ScorerError, match=message):
        PipelineScorer.load(root, models["linear_regression_scaled"].input_types)


def test_a_missing_input_type_is_refused_by_column(models):
    m = models["random_forest_classification"]
    types = {k: v for k, v in m.input_types.items() if k != "cond"}
    with pytest.raises(ScorerError, match=r"input_types has no type for column 'cond'"):
        PipelineScorer.load(m.path, types)
    with pytest.raises(ScorerError, match=r"input_types\['zip'\] = 'date'"):
        PipelineScorer.load(m.path, {**m.input_types, "zip": "date"})


@pytest.mark.parametrize(
    "change, column, reason",
    [
        ({"year": None}, "year", "null where the model needs a value"),
        ({"sqft": None, "dist": NAN}, "dist", "NaN where the model needs a value"),
        ({"rooms": 2.5}, "rooms", "float 2.5 given for a int column"),
        ({"cond": 3}, "cond", "int 3 given for a string column"),
        ({"garage": 1}, "garage", "int 1 given for a boolean column"),
        ({"year": 2**63}, "year", "outside the bigint range"),
    ],
)
def test_a_record_the_model_cannot_score_names_the_column(models, change, column, reason):
    m = models["gbt_classification"]
    scorer = PipelineScorer.load(m.path, m.input_types)
    good = m.records[0]
    with pytest.raises(ScoreInputError, match=reason) as err:
        scorer.score([good, {**good, **change}])
    assert (err.value.column, err.value.record) == (column, 1)
    assert reason in err.value.reason
    missing = {k: v for k, v in good.items() if k != "zip"}
    with pytest.raises(ScoreInputError, match="zip: missing from the record"):
        scorer.score([missing])


def test_string_indexer_error_mode_refuses_unseen_categories(models, tmp_path):
    root = _copy(models, "random_forest_regression", tmp_path)
    _edit_metadata(
        _stage(root, "StringIndexer"), lambda m: m["paramMap"].update(handleInvalid="error")
    )
    m = models["random_forest_regression"]
    scorer = PipelineScorer.load(root, m.input_types)
    seen = next(r for r in m.records if r["zip"] is not None and r["cond"] is not None)
    assert scorer.score([seen]) == PipelineScorer.load(m.path, m.input_types).score([seen])
    with pytest.raises(ScoreInputError, match="unseen category 'excellent'") as err:
        scorer.score([{**seen, "cond": "excellent"}])
    assert err.value.column == "cond"
    with pytest.raises(ScoreInputError, match="null: Spark fails") as err:
        scorer.score([{**seen, "zip": None}])
    assert err.value.column == "zip"


# --- helpers ---------------------------------------------------------------------------------


def test_max_relative_diff():
    assert max_relative_diff([1000.0, 0.5], [1000.001, 0.5]) == pytest.approx(1e-6)
    assert max_relative_diff([0.0], [1e-12]) == 1e-12  # absolute below 1
    assert max_relative_diff([NAN], [NAN]) == 0.0 and max_relative_diff([NAN], [1.0]) == math.inf
    with pytest.raises(ValueError, match="2 Spark values but 1 of ours"):
        max_relative_diff([1.0, 2.0], [1.0])


def test_fma_rounds_once_like_java():
    rnd = random.Random(5)
    for _ in range(3000):
        a = rnd.uniform(-1, 1) * 10 ** rnd.randint(-20, 20)
        b = rnd.uniform(-1, 1) * 10 ** rnd.randint(-20, 20)
        c = -(a * b) * rnd.choice([1.0, 1.0 + 2**-52, 0.5, 0.0]) + rnd.choice([0.0, 1e-30])
        exact = float(Fraction(a) * Fraction(b) + Fraction(c))
        assert _fma(a, b, c) == exact, (a, b, c)
    # beyond the fast path: a product past the double range, a product below it
    assert 2e154 * 1e154 - 1.5e308 == math.inf
    assert _fma(2e154, 1e154, -1.5e308) == float(
        Fraction(2e154) * Fraction(1e154) - Fraction(1.5e308)
    )
    assert _fma(3e-160, 3e-160, 1e-310) == float(Fraction(3e-160) ** 2 + Fraction(1e-310))


@pytest.mark.parametrize(
    "cpu, skips",
    [
        ({"vendor_id": "GenuineIntel", "cpu family": "6", "model": "85", "stepping": "4"}, True),
        ({"vendor_id": "GenuineIntel", "cpu family": "6", "model": "85", "stepping": "7"}, False),
        ({"vendor_id": "AuthenticAMD", "cpu family": "26", "model": "2", "stepping": "0"}, False),
        ({"vendor_id": "GenuineIntel", "cpu family": "6", "model": "x"}, False),
    ],
)
def test_early_skylake_server_steppings_count_as_256_bit_vectors(cpu, skips):
    """HotSpot keeps AVX-512 off there: the scorer's lanes must follow the JVM, not the flags."""
    from lakeloop.serving.scorer import _hotspot_skips_avx512

    assert _hotspot_skips_avx512(cpu) is skips
