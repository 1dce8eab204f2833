"""The scoring server through Starlette's TestClient, on real models: small Spark pipelines
fitted once for the module, logged with their input signature and registered in a temporary
SQLite MLflow registry, scored by the JVM-free scorer. Scores equal Spark's transform of the
same rows; bad input is refused by field and record and never logged as served; the traffic
split is sticky by entity; a moved alias is swapped in atomically under load; no champion is a
503 until one appears; /metrics parses; by-key reads the online store."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import mlflow.spark
import pyspark
import pytest
from deltalake import DeltaTable
from prometheus_client.parser import text_string_to_metric_families
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F
from starlette.testclient import TestClient

from lakeloop.config import AppConfig
from lakeloop.ml import pipeline as mlp
from lakeloop.ml import tracking
from lakeloop.ml.model_log import input_signature
from lakeloop.serving.app import create_app, key_fraction
from lakeloop.serving.models import ModelHolder, ValueTypeError, convert, load_model
from lakeloop.serving.online_store import SqliteOnlineStore
from lakeloop.serving.request_log import RequestLog
from lakeloop.serving.scorer import ScorerError
from lakeloop.spec import ModelSpec, Pipeline
from tests.conftest import ROOT, spec_variant
from tests.integration.test_train_predict import ml_config as integration_ml_config

REG = {
    "name": "houses_online",
    "task": "regression",
    "features": {
        "numeric": ["sqft", "bathrooms", "has_garage", "lot_sqft", "zip_sales_90d"],
        "categorical": ["zipcode"],
        "impute": {"lot_sqft": "median"},
    },
    "estimator": {"type": "linear_regression", "params": {"regParam": 0.01}},
    "predictions": "predictions",
}
CLF = {
    **REG,
    "name": "houses_online_clf",
    "task": "classification",
    "estimator": {"type": "logistic_regression", "params": {"regParam": 0.01}},
}
FEATURES = (
    "listing_id string, sqft int, bathrooms double, has_garage boolean, lot_sqft int, "
    "zip_sales_90d bigint, zipcode string"
)
INPUTS = ["sqft", "bathrooms", "has_garage", "lot_sqft", "zip_sales_90d", "zipcode"]
MAX_RECORDS = 250
MAX_BODY = 100_000
KEY = "listing_id"  # the houses spec's entity key


def _training_rows(seed: int, n: int = 60) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sqft = rng.randint(600, 4000)
        baths = rng.choice([1.0, 1.5, 2.0, 2.5, 3.0])
        garage = rng.random() < 0.5
        lot = None if i % 7 == 0 else rng.randint(2000, 20000)
        sales = rng.randint(0, 50)
        zipcode = rng.choice(["90001", "90002", "90003"])
        price = 150 * sqft + 20_000 * baths + 15_000 * garage + 2 * (lot or 8000) + 100 * sales
        price += {"90001": 0, "90002": 40_000, "90003": -25_000}[zipcode] + rng.gauss(0, 9_000)
        rows.append((f"T{i}", sqft, baths, garage, lot, sales, zipcode, price))
    return rows


def _training_set(spark, seed: int, task: str):
    rows = _training_rows(seed)
    if task == "classification":
        cut = sorted(r[-1] for r in rows)[len(rows) // 2]
        rows = [(*r[:-1], 1.0 if r[-1] > cut else 0.0) for r in rows]
    return spark.createDataFrame(rows, f"{FEATURES}, {mlp.LABEL} double")


@dataclass
class Registry:
    """The module's MLflow registry: model versions, their Spark models, and pipelines."""

    cfg: AppConfig
    tmp: Path
    client: object
    spark_models: dict[tuple[str, int], PipelineModel] = field(default_factory=dict)
    pipelines: dict[tuple[str, float], Pipeline] = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return self.cfg.path(self.cfg.serving.model_cache)

    def pipeline(self, model: dict = REG, fraction: float = 0.0) -> Pipeline:
        k = (model["name"], fraction)
        if k not in self.pipelines:

            def edit(d):
                d["model"] = model
                d["serving"] = {"challenger_fraction": fraction}

            self.pipelines[k], _ = spec_variant(self.cfg, self.tmp, edit)
        return self.pipelines[k]

    def aliases(self, name: str, champion: int | None, challenger: int | None = None) -> None:
        for alias, version in ((tracking.CHAMPION, champion), (tracking.CHALLENGER, challenger)):
            if version is None:
                tracking.delete_alias(self.client, name, alias)
            else:
                tracking.set_alias(
                    self.client, tracking.by_version(self.client, name, version), alias
                )


def ml_config(tmp: Path, **serving) -> AppConfig:
    """The integration tests' config under `tmp`, with this module's request limits and no
    polling (tests call `holder.refresh()`)."""
    limits = {"max_records": MAX_RECORDS, "max_body_bytes": MAX_BODY, "poll_interval_s": 3600}
    return integration_ml_config(tmp, **{**limits, **serving})


def register(
    reg: Registry, spec: dict, model: PipelineModel, schema, signature: bool = True
) -> int:
    """Log `model` as MLflow's Spark flavor (with the input signature lakeloop's train writes)
    and register it under the spec's name; the new version."""
    exp = reg.client.get_experiment_by_name("serving-tests")
    exp_id = (
        exp.experiment_id
        if exp
        else reg.client.create_experiment("serving-tests", (reg.tmp / "art").as_uri())
    )
    sig = input_signature(schema, ModelSpec.model_validate(spec)) if signature else None
    with mlflow.start_run(experiment_id=exp_id):
        info = mlflow.spark.log_model(
            model,
            artifact_path=tracking.MODEL_ARTIFACT,
            signature=sig,
            registered_model_name=spec["name"],
            dfs_tmpdir=str(reg.tmp / "dfs"),
            pip_requirements=[f"pyspark=={pyspark.__version__}"],  # no inference subprocess
        )
    version = int(info.registered_model_version)
    reg.spark_models[(spec["name"], version)] = model
    return version


def fit(spark, spec: dict, seed: int, **params) -> tuple[PipelineModel, object]:
    s = ModelSpec.model_validate(
        {
            **spec,
            "estimator": {**spec["estimator"], "params": {**spec["estimator"]["params"], **params}},
        }
    )
    df = _training_set(spark, seed, s.task)
    return mlp.build_pipeline(s).fit(df), df.schema


@pytest.fixture(scope="module")
def registry(spark, tmp_path_factory) -> Registry:
    """houses_online v1 (A), v2 (B: other data, stronger regularization), v3 (A again, logged
    without a signature); houses_online_clf v1."""
    tmp = tmp_path_factory.mktemp("serving")
    cfg = ml_config(tmp)
    reg = Registry(cfg, tmp, tracking.configure(cfg))
    a, schema = fit(spark, REG, seed=1)
    b, _ = fit(spark, REG, seed=2, regParam=0.5)
    clf, clf_schema = fit(spark, CLF, seed=3)
    assert register(reg, REG, a, schema) == 1
    assert register(reg, REG, b, schema) == 2
    assert register(reg, REG, a, schema, signature=False) == 3
    assert register(reg, CLF, clf, clf_schema) == 1
    return reg


def spark_scores(spark, model: PipelineModel, records: list[dict]) -> list[tuple]:
    """Spark's (prediction, probability) of `records` (values as Spark holds them)."""
    types = dict(f.split(" ") for f in FEATURES.split(", "))

    def typed(c, v):
        if v is None:
            return None
        return {"int": int, "bigint": int, "double": float}.get(types[c], lambda x: x)(v)

    rows = [(i, *[typed(c, r.get(c)) for c in [KEY, *INPUTS]]) for i, r in enumerate(records)]
    df = spark.createDataFrame(rows, f"__i int, {FEATURES}")
    out = model.transform(df).orderBy("__i")
    cols = [mlp.PREDICTION]
    if mlp.PROBABILITY in out.columns:
        cols.append(F.col(mlp.PROBABILITY))
    return [
        (r[0], tuple(r[1].toArray().tolist()) if len(r) > 1 else None)
        for r in out.select(*cols).collect()
    ]


RECORDS = [
    # an integer for a double column (JSON has one number type)
    {KEY: "L1", "sqft": 1500, "bathrooms": 2, "has_garage": True, "lot_sqft": 5000,
     "zip_sales_90d": 12, "zipcode": "90001"},
    # 2200.0 for an int column; the imputed lot_sqft absent; a zipcode never seen in training
    {KEY: "L2", "sqft": 2200.0, "bathrooms": 2.5, "has_garage": False, "zip_sales_90d": 3,
     "zipcode": "99999"},
    # no entity key; optional columns null
    {"sqft": 900, "bathrooms": 1.0, "has_garage": False, "lot_sqft": None, "zip_sales_90d": 0,
     "zipcode": None},
]  # fmt: skip


@contextlib.contextmanager
def served(reg: Registry, model: dict = REG, fraction: float = 0.0, **kw):
    """A TestClient on an app with its own holder (refreshed once) and request log; yields
    (client, holder, log); the log is closed on exit (read it with `logged`)."""
    holder = kw.pop("holder", None) or ModelHolder(reg.client, model["name"], reg.cache, 3600)
    if holder.snapshot.champion is None:
        holder.refresh()
    uri = reg.tmp / "logs" / uuid.uuid4().hex[:8]
    log = RequestLog(str(uri), "America/Los_Angeles", reg.tmp / "unlogged", flush_s=0.2)
    app = create_app(reg.cfg, reg.pipeline(model, fraction), holder=holder, request_log=log, **kw)
    try:
        with TestClient(app, raise_server_exceptions=True) as client:
            yield client, holder, log
    finally:
        log.close()


def logged(log: RequestLog) -> list[dict]:
    if log.rows_written == 0:
        return []
    return DeltaTable(log.uri).to_pyarrow_table().to_pylist()


def _preds(body: dict) -> list[float]:
    return [p["prediction"] for p in body["predictions"]]


# --- values as Spark holds them -----------------------------------------------------------


@pytest.mark.parametrize(
    "kind, value, expected",
    [
        ("integer", 3, 3),
        ("integer", 3.0, 3),
        ("integer", -(2**31), -(2**31)),
        ("long", 2**40, 2**40),
        ("double", 2, 2.0),
        ("double", 0.1, 0.1),
        ("float", 0.1, 0.10000000149011612),  # rounded to 32 bits as Spark stores it
        ("string", "90001", "90001"),
        ("boolean", False, False),
    ],
)
def test_convert_gives_sparks_values(kind, value, expected):
    got = convert(kind, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "kind, value, message",
    [
        ("integer", 3.5, "a number with a fraction"),
        ("integer", True, "got a boolean"),
        ("integer", "3", "got a string"),
        ("integer", 2**31, "out of the integer range"),
        ("long", 2**63, "out of the long range"),
        ("double", True, "got a boolean"),
        ("double", "1.5", "got a string"),
        ("double", float("nan"), "finite"),
        ("float", 1e39, "out of the float"),
        ("string", 90001, "expected a string, got a number"),
        ("boolean", 1, "expected a boolean"),
        ("boolean", "true", "expected a boolean"),
    ],
)
def test_convert_refuses_other_types(kind, value, message):
    with pytest.raises(ValueTypeError, match=message):
        convert(kind, value)


def test_key_fraction_is_the_documented_hash():
    key = {"b": 2, KEY: "L1"}
    digest = hashlib.sha256(b'{"b":2,"listing_id":"L1"}').digest()
    assert key_fraction(key) == int.from_bytes(digest[:8], "big") / 2**64
    assert key_fraction({KEY: "L1", "b": 2}) == key_fraction(key)  # canonical: order-free
    assert 0 <= key_fraction({KEY: "L2"}) < 1 and key_fraction({KEY: "L2"}) != key_fraction(key)


# --- models -----------------------------------------------------------------------------


def test_load_model_reads_the_signature_and_reuses_the_cache(registry, monkeypatch):
    ref = tracking.by_version(registry.client, REG["name"], 1)
    m = load_model(registry.client, ref, registry.cache)
    assert m.inputs == {
        "sqft": ("integer", True),
        "bathrooms": ("double", True),
        "has_garage": ("boolean", True),
        "lot_sqft": ("integer", False),  # imputed
        "zip_sales_90d": ("long", True),
        "zipcode": ("string", False),  # categorical: the indexer keeps nulls
    }
    assert m.scorer.task == "regression"
    assert (registry.cache / "houses_online-v1" / "model" / "sparkml").is_dir()

    def no_download(**kw):
        raise AssertionError(f"downloaded again: {kw}")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_download)
    again = load_model(registry.client, ref, registry.cache)
    assert again.inputs == m.inputs and again.ref == ref


def test_a_model_without_signature_is_refused_with_what_to_do(registry):
    ref = tracking.by_version(registry.client, REG["name"], 3)
    with pytest.raises(ScorerError, match="trained before lakeloop recorded its inputs.*retrain"):
        load_model(registry.client, ref, registry.cache)
    assert not list(registry.cache.glob(".houses_online-v3*"))  # no half download left


# --- /v1/predict ------------------------------------------------------------------------


def test_predict_one_and_many_equal_sparks_scores(spark, registry):
    registry.aliases(REG["name"], champion=1)
    expected = spark_scores(spark, registry.spark_models[(REG["name"], 1)], RECORDS)
    with served(registry) as (client, _, log):
        one = client.post("/v1/predict", json={"record": RECORDS[0]})
        many = client.post("/v1/predict", json={"records": RECORDS})
    assert one.status_code == 200 and many.status_code == 200, (one.text, many.text)
    assert _preds(one.json()) == pytest.approx([expected[0][0]], rel=1e-9)
    assert _preds(many.json()) == pytest.approx([e[0] for e in expected], rel=1e-9)
    body = many.json()
    assert body["model"] == {"name": REG["name"], "version": 1, "alias": "champion"}
    first, _, third = body["predictions"]
    assert first["entity_key"] == {KEY: "L1"} and "entity_key" not in third
    assert {(p["model_version"], p["model_alias"]) for p in body["predictions"]} == {
        (1, "champion")
    }
    assert "probability" not in first
    rows = sorted(
        logged(log), key=lambda r: (r["request_id"] != one.json()["request_id"], r["record_index"])
    )
    assert [(r["status"], r["record_index"]) for r in rows] == [
        ("ok", 0),
        ("ok", 0),
        ("ok", 1),
        ("ok", 2),
    ]
    assert [r["prediction"] for r in rows[1:]] == _preds(body)
    # the features as scored: 2200.0 became the int 2200, the absent lot_sqft a null
    assert json.loads(rows[2]["features"]) == {
        "sqft": 2200, "bathrooms": 2.5, "has_garage": False, "lot_sqft": None,
        "zip_sales_90d": 3, "zipcode": "99999",
    }  # fmt: skip
    assert json.loads(rows[2]["entity_key"]) == {KEY: "L2"} and rows[3]["entity_key"] is None
    assert all(r["model_version"] == 1 and r["reason"] is None for r in rows)


def test_classification_answers_the_probabilities_sparks_pipeline_gives(spark, registry):
    registry.aliases(CLF["name"], champion=1)
    expected = spark_scores(spark, registry.spark_models[(CLF["name"], 1)], RECORDS)
    with served(registry, CLF) as (client, _, log):
        r = client.post("/v1/predict", json={"records": RECORDS})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    for p, (pred, prob) in zip(preds, expected, strict=True):
        assert p["prediction"] == pred
        assert p["probability"] == pytest.approx(list(prob), rel=1e-9)
    rows = sorted(logged(log), key=lambda x: x["record_index"])
    assert [x["probability"] for x in rows] == pytest.approx([e[1][1] for e in expected], rel=1e-9)


GOOD = {"sqft": 1200.0, "bathrooms": 1, "has_garage": True, "zip_sales_90d": 4}
BAD_INPUT = [
    # (case, body bytes, status, code, field, record)
    ("malformed JSON", b'{"records": [', 400, "malformed_json", None, None),
    ("NaN is not JSON", b'{"records": [{"sqft": NaN}]}', 400, "malformed_json", None, None),
    ("not an object", b"[1, 2]", 400, "bad_body", None, None),
    ("no records", b"{}", 400, "bad_body", "records", None),
    ("unknown top-level", b'{"rows": []}', 400, "bad_body", "rows", None),
    ("records not a list", b'{"records": {"a": 1}}', 400, "bad_body", "records", None),
    ("empty", b'{"records": []}', 422, "empty", "records", None),
    ("too many", {"records": [GOOD] * (MAX_RECORDS + 1)}, 413, "too_many_records", "records", None),
    ("record not an object", {"records": [GOOD, 5]}, 422, "bad_record", None, 1),
    ("string for an int", {"records": [GOOD, {**GOOD, "sqft": "1200"}]}, 422, "wrong_type", "sqft", 1),
    ("fraction for an int", {"records": [{**GOOD, "sqft": 1200.5}]}, 422, "wrong_type", "sqft", 0),
    ("bool for a double", {"records": [{**GOOD, "bathrooms": True}]}, 422, "wrong_type", "bathrooms", 0),
    ("number for a boolean", {"records": [{**GOOD, "has_garage": 1}]}, 422, "wrong_type", "has_garage", 0),
    ("number for a string", {"records": [{**GOOD, "zipcode": 90001}]}, 422, "wrong_type", "zipcode", 0),
    ("int out of range", {"records": [{**GOOD, "sqft": 2**40}]}, 422, "wrong_type", "sqft", 0),
    ("missing required", {"records": [GOOD, GOOD, {k: v for k, v in GOOD.items() if k != "sqft"}]}, 422, "missing_column", "sqft", 2),
    ("null in required", {"records": [{**GOOD, "bathrooms": None}]}, 422, "null_in_required", "bathrooms", 0),
    ("unknown column", {"records": [{**GOOD, "sqft_": 3}]}, 422, "unknown_column", "sqft_", 0),
    ("key as an object", {"records": [{**GOOD, KEY: {"id": 1}}]}, 422, "bad_entity_key", KEY, 0),
    ("body too large", {"records": [{**GOOD, "zipcode": "x" * MAX_BODY}]}, 413, "body_too_large", None, None),
]  # fmt: skip


def test_bad_input_is_refused_by_field_and_record_and_serving_goes_on(registry, subtests):
    registry.aliases(REG["name"], champion=1)
    bad_ids = []
    with served(registry) as (client, _, log):
        for case, body, status, code, fld, record in BAD_INPUT:
            with subtests.test(case):
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                rid = f"bad-{len(bad_ids)}"
                bad_ids.append(rid)
                r = client.post("/v1/predict", content=content, headers={"X-Request-ID": rid})
                assert r.status_code == status, r.text
                err = r.json()["error"]
                assert (err["code"], err["field"], err["record"]) == (code, fld, record), err
                assert err["reason"] and (fld is None or fld in err["reason"]), err
                good = client.post("/v1/predict", json={"records": [GOOD, {**GOOD, KEY: "L9"}]})
                assert good.status_code == 200 and len(good.json()["predictions"]) == 2
        # the size check on the streamed bytes, when no Content-Length is sent
        big = json.dumps({"records": [{**GOOD, "zipcode": "x" * MAX_BODY}]}).encode()

        def chunks():
            for i in range(0, len(big), 4096):
                yield big[i : i + 4096]

        r = client.post("/v1/predict", content=chunks(), headers={"X-Request-ID": "streamed"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
        bad_ids.append("streamed")
    rows = logged(log)
    bad = [x for x in rows if x["request_id"] in bad_ids]
    assert sorted(x["request_id"] for x in bad) == sorted(bad_ids)  # one row each
    assert {(x["status"], x["prediction"]) for x in bad} == {("rejected", None)}
    assert all(x["reason"] for x in bad)
    wrong = next(
        x
        for x in bad
        if x["request_id"] == f"bad-{[c[0] for c in BAD_INPUT].index('string for an int')}"
    )
    assert wrong["record_index"] == 1 and json.loads(wrong["features"])["sqft"] == "1200"
    ok = [x for x in rows if x["request_id"] not in bad_ids]
    assert len(ok) == 2 * len(BAD_INPUT) and {x["status"] for x in ok} == {"ok"}


# --- traffic split ----------------------------------------------------------------------


def _keyed(n: int) -> list[dict]:
    return [{**RECORDS[0], KEY: f"K{i}"} for i in range(n)]


def test_the_split_is_sticky_by_entity_and_near_the_fraction(spark, registry):
    registry.aliases(REG["name"], champion=1, challenger=2)
    records = _keyed(200)
    with served(registry, fraction=0.5) as (client, _, log):
        first = client.post("/v1/predict", json={"records": records}).json()["predictions"]
        again = [
            client.post("/v1/predict", json={"records": records[i : i + 50]}).json()["predictions"]
            for i in range(0, 200, 50)
        ]
        unkeyed = client.post("/v1/predict", json={"records": [RECORDS[2]] * 20}).json()
    again = [p for part in again for p in part]
    aliases = [p["model_alias"] for p in first]
    assert aliases == [p["model_alias"] for p in again]  # the same entity, the same model
    for rec, p in zip(records, first, strict=True):
        digest = hashlib.sha256(json.dumps({KEY: rec[KEY]}, separators=(",", ":")).encode())
        to_challenger = int.from_bytes(digest.digest()[:8], "big") / 2**64 < 0.5
        assert p["model_alias"] == ("challenger" if to_challenger else "champion")
        assert p["model_version"] == (2 if to_challenger else 1)
    assert 70 <= aliases.count("challenger") <= 130, aliases.count("challenger")
    assert {p["model_alias"] for p in unkeyed["predictions"]} == {"champion"}
    a, b = (
        spark_scores(spark, registry.spark_models[(REG["name"], v)], records[:1]) for v in (1, 2)
    )
    assert a[0][0] != pytest.approx(b[0][0], rel=1e-6)  # the two models differ
    for p in first:
        want = b[0][0] if p["model_alias"] == "challenger" else a[0][0]
        assert p["prediction"] == pytest.approx(want, rel=1e-9)
    rows = logged(log)
    assert {(r["model_alias"], r["model_version"]) for r in rows} == {
        ("champion", 1),
        ("challenger", 2),
    }


def test_fraction_zero_or_a_removed_challenger_sends_everything_to_the_champion(registry):
    registry.aliases(REG["name"], champion=1, challenger=2)
    with served(registry, fraction=0.0) as (client, holder, _):
        body = client.post("/v1/predict", json={"records": _keyed(100)}).json()
        assert holder.snapshot.challenger.ref.version == 2  # loaded, but given no traffic
    assert {(p["model_alias"], p["model_version"]) for p in body["predictions"]} == {
        ("champion", 1)
    }
    with served(registry, fraction=0.5) as (client, holder, _):
        before = client.post("/v1/predict", json={"records": _keyed(100)}).json()
        registry.aliases(REG["name"], champion=1, challenger=None)
        assert holder.refresh().challenger is None  # the alias removed: dropped
        after = client.post("/v1/predict", json={"records": _keyed(100)}).json()
    assert {p["model_alias"] for p in before["predictions"]} == {"champion", "challenger"}
    assert {p["model_alias"] for p in after["predictions"]} == {"champion"}


# --- reloads ----------------------------------------------------------------------------


def test_a_moved_champion_is_swapped_in_atomically_under_load(spark, registry):
    registry.aliases(REG["name"], champion=1)
    record = RECORDS[0]
    want = {
        v: spark_scores(spark, registry.spark_models[(REG["name"], v)], [record])[0][0]
        for v in (1, 2)
    }
    answers: list[tuple[int, int, float]] = []
    stop = threading.Event()
    with served(registry) as (client, holder, _):

        def hammer():
            while not stop.is_set():
                r = client.post("/v1/predict", json={"record": record})
                p = r.json()["predictions"][0] if r.status_code == 200 else {}
                answers.append((r.status_code, p.get("model_version"), p.get("prediction")))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            _await(lambda: len(answers) >= 20)
            registry.aliases(REG["name"], champion=2)
            snap = holder.refresh()  # the load happens while requests are being served
            n = len(answers)
            _await(lambda: len(answers) >= n + 20)
        finally:
            stop.set()
            for t in threads:
                t.join()
        after = client.post("/v1/predict", json={"record": record}).json()
    assert snap.champion.ref.version == 2
    assert {a[0] for a in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    versions = [a[1] for a in answers]
    assert versions[0] == 1 and versions[-1] == 2 and set(versions) == {1, 2}
    # every answer is one version's score for that version, never a mix
    assert all(p == pytest.approx(want[v], rel=1e-9) for _, v, p in answers)
    assert after["predictions"][0]["model_version"] == 2 and after["model"]["version"] == 2


def test_a_version_that_fails_to_load_leaves_the_served_one(registry):
    registry.aliases(REG["name"], champion=1)
    with served(registry) as (client, holder, _):
        registry.aliases(REG["name"], champion=3)  # v3 has no signature: cannot be served
        snap = holder.refresh()
        assert snap.champion.ref.version == 1 and holder.load_failures == 1
        assert "trained before lakeloop recorded its inputs" in holder.last_error
        r = client.post("/v1/predict", json={"record": GOOD})
        assert r.status_code == 200 and r.json()["model"]["version"] == 1
        families = _metrics(client)
    assert _sample(families, "lakeloop_serving_model_load_failures_total") == 1
    assert _sample(families, "lakeloop_serving_model_version", alias="champion") == 1


def test_no_champion_is_a_503_until_the_poller_finds_one(registry):
    registry.aliases(REG["name"], champion=None)
    holder = ModelHolder(registry.client, REG["name"], registry.cache, poll_interval_s=0.1)
    holder.start()
    try:
        with served(registry, holder=holder) as (client, _, log):
            for path in ("/health", "/v1/model"):
                r = client.get(path)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["reason"].startswith("no champion model houses_online")
            r = client.post("/v1/predict", json={"record": GOOD}, headers={"X-Request-ID": "x"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "no_champion"
            assert "no champion model houses_online in the registry" in r.json()["error"]["reason"]
            registry.aliases(REG["name"], champion=1)
            _await(lambda: holder.snapshot.champion is not None)  # the poller's thread
            r = client.post("/v1/predict", json={"record": GOOD})
            assert r.status_code == 200 and r.json()["model"]["version"] == 1
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["champion"]["version"] == 1 and health.json()["challenger"] is None
    finally:
        holder.stop()
    assert holder._thread is None
    status = {r["request_id"]: r["status"] for r in logged(log)}
    assert status.pop("x") == "rejected" and set(status.values()) == {"ok"}


def test_model_info_lists_inputs_versions_and_the_split(registry):
    registry.aliases(REG["name"], champion=1, challenger=2)
    with served(registry, fraction=0.5) as (client, _, _):
        info = client.get("/v1/model").json()
    assert info["name"] == REG["name"] and info["task"] == "regression"
    assert info["challenger_fraction"] == 0.5 and info["entity_key"] == [KEY]
    champ = info["aliases"]["champion"]
    assert champ["version"] == 1 and info["aliases"]["challenger"]["version"] == 2
    assert {c["name"]: (c["type"], c["required"]) for c in champ["inputs"]}["lot_sqft"] == (
        "integer",
        False,
    )
    assert [c["name"] for c in champ["inputs"]] == INPUTS


# --- metrics ----------------------------------------------------------------------------


def _metrics(client) -> dict:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def _sample(families: dict, sample: str, **labels) -> float:
    name = sample.removesuffix("_total").removesuffix("_count").removesuffix("_bucket")
    values = [
        s.value
        for s in families[name].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (sample, labels, families[name].samples)
    return values[0]


def test_metrics_count_requests_errors_and_latency_per_app(registry):
    registry.aliases(REG["name"], champion=1)
    with served(registry) as (client, _, log):
        for _ in range(3):
            client.post("/v1/predict", json={"record": GOOD})
        client.post("/v1/predict", json={"record": {**GOOD, "sqft": "x"}})
        client.post("/v1/predict", content=b"{")
        log.wait_done(3, 30)
        families = _metrics(client)
        with served(registry) as (other, _, _):  # another app: counters of its own
            fresh = _metrics(other)
    assert (
        _sample(families, "lakeloop_serving_requests_total", endpoint="/v1/predict", status="200")
        == 3
    )
    assert (
        _sample(families, "lakeloop_serving_requests_total", endpoint="/v1/predict", status="422")
        == 1
    )
    assert _sample(families, "lakeloop_serving_errors_total", reason="wrong_type") == 1
    assert _sample(families, "lakeloop_serving_errors_total", reason="malformed_json") == 1
    assert _sample(families, "lakeloop_serving_request_seconds_count", endpoint="/v1/predict") == 5
    buckets = {
        s.labels["le"]
        for s in families["lakeloop_serving_request_seconds"].samples
        if "le" in s.labels
    }
    assert {"0.0005", "0.001", "0.002", "0.005", "0.01"} <= buckets
    assert _sample(families, "lakeloop_serving_records_total", alias="champion") == 3
    assert _sample(families, "lakeloop_serving_model_version", alias="champion") == 1
    assert _sample(families, "lakeloop_serving_model_version", alias="challenger") == 0
    assert _sample(families, "lakeloop_serving_request_log_rows_total", outcome="written") >= 3
    assert (
        "lakeloop_serving_requests" not in fresh or not fresh["lakeloop_serving_requests"].samples
    )


# --- /v1/predict/by-key -----------------------------------------------------------------


def test_by_key_scores_the_stored_features(spark, registry, tmp_path):
    registry.aliases(REG["name"], champion=1)
    store = SqliteOnlineStore(tmp_path / "online.db")
    stored = [
        {**RECORDS[0], "sqft": 1500},
        {**RECORDS[1], "sqft": 2200, KEY: "L2"},
        {**RECORDS[0], KEY: "L3", "sqft": "1500"},  # a stored value the model cannot take
    ]
    extra = {"feature_ts": "2026-03-01T10:00:00", "feature_date": "2026-03-01", "note": "x"}
    rows = [{**r, "lot_sqft": r.get("lot_sqft"), **extra} for r in stored]
    store.write("houses", [KEY], rows)
    expected = spark_scores(spark, registry.spark_models[(REG["name"], 1)], stored[:2])
    try:
        with served(registry, store=store) as (client, _, log):
            r = client.post(
                "/v1/predict/by-key",
                json={"keys": [{KEY: "L2"}, {KEY: "nope"}, {KEY: "L1"}, {KEY: "L3"}]},
            )
            none = client.post("/v1/predict/by-key", json={"keys": [{KEY: "nope"}, {KEY: "nada"}]})
            only_bad = client.post("/v1/predict/by-key", json={"key": {KEY: "L3"}})
            bad_key = client.post("/v1/predict/by-key", json={"keys": [{KEY: "L1", "sqft": 3}]})
            no_key = client.post("/v1/predict/by-key", json={"keys": [{}]})
    finally:
        store.close()
    assert r.status_code == 200, r.text
    l2, nope, l1, l3 = r.json()["predictions"]
    assert l2["prediction"] == pytest.approx(expected[1][0], rel=1e-9) and l2["entity_key"] == {
        KEY: "L2"
    }
    assert l1["prediction"] == pytest.approx(expected[0][0], rel=1e-9)
    assert nope == {
        "entity_key": {KEY: "nope"},
        "error": {"code": "no_features", "reason": 'no features for key {"listing_id":"nope"} in the online store'},
    }  # fmt: skip
    assert l3["error"]["code"] == "wrong_type" and "sqft" in l3["error"]["reason"]
    assert none.status_code == 404 and none.json()["error"]["code"] == "no_features"
    assert [p["error"]["code"] for p in none.json()["predictions"]] == ["no_features"] * 2
    assert only_bad.status_code == 422 and only_bad.json()["error"]["field"] == "sqft"
    assert bad_key.status_code == 422 and bad_key.json()["error"]["code"] == "unknown_column"
    assert no_key.status_code == 422 and no_key.json()["error"]["field"] == KEY
    mine = sorted(
        (x for x in logged(log) if x["request_id"] == r.json()["request_id"]),
        key=lambda x: x["record_index"],
    )
    assert [(x["record_index"], x["status"]) for x in mine] == [
        (0, "ok"), (1, "rejected"), (2, "ok"), (3, "rejected"),
    ]  # fmt: skip
    assert json.loads(mine[0]["features"])["sqft"] == 2200  # the stored features, as scored


def test_by_key_without_a_usable_store_is_a_503(registry, monkeypatch):
    from lakeloop.serving import app as app_module
    from lakeloop.serving.online_store import OnlineStoreError

    def broken(cfg):
        raise OnlineStoreError("online store /x: not a usable SQLite database")

    monkeypatch.setattr(app_module, "open_store", broken)
    registry.aliases(REG["name"], champion=1)
    with served(registry) as (client, _, _):
        r = client.post("/v1/predict/by-key", json={"keys": [{KEY: "L1"}]})
        ok = client.post("/v1/predict", json={"record": GOOD})
    assert r.status_code == 503 and "not a usable SQLite database" in r.json()["error"]["reason"]
    assert ok.status_code == 200


def _await(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_the_server_modules_import_no_spark():
    """MLflow imports the pyspark package when it is installed (mlflow.types.schema), which
    starts no JVM; lakeloop's serving code itself never imports Spark (the real process is
    checked for a JVM in tests/integration/test_serve.py)."""
    for name in ("app", "models", "request_log", "scorer", "online_store"):
        tree = ast.parse((ROOT / "src/lakeloop/serving" / f"{name}.py").read_text())
        imported = [
            n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        ]
        assert not [m for m in imported if m and m.split(".")[0] in ("pyspark", "py4j")], name
        assert "mlflow.spark" not in imported, name
