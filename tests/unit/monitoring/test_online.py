"""The monitor's reading of the online request log (monitoring/online.py) on tiny logs that
have the awkward properties: two models answering, refused requests, records without a key,
labels that came before the request (they do not count) and after it (they do)."""

import datetime as dt
import json

import pytest
from pyspark.sql import types as T

from lakeloop.monitoring import online

D = dt.date(2026, 3, 2)
AT = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)
LOG_SCHEMA = (
    "request_id string, record_index int, served_at timestamp, served_date date, "
    "endpoint string, entity_key string, features string, model_name string, "
    "model_version int, model_alias string, prediction double, probability double, "
    "latency_ms double, status string, reason string"
)
FEATURES = T.StructType(
    [T.StructField("sqft", T.IntegerType()), T.StructField("zip", T.StringType())]
)
KEYS = T.StructType([T.StructField("listing_id", T.StringType())])


def _row(rid, i, key, alias, version, pred, latency, status="ok", day=D, sqft=1000):
    return (
        rid,
        i,
        AT,
        day,
        "/v1/predict/by-key",
        None if key is None else json.dumps({"listing_id": key}),
        json.dumps({"sqft": sqft, "zip": "98105"}),
        "houses_price",
        version,
        alias,
        pred,
        None,
        latency,
        status,
        None if status == "ok" else "unknown column: x",
    )


@pytest.fixture
def log(spark):
    rows = [
        _row("r1", 0, "L1", "champion", 4, 100.0, 1.0),
        _row("r1", 1, "L2", "champion", 4, 200.0, 1.0),
        _row("r2", 0, "L3", "challenger", 5, 300.0, 3.0),
        _row("r3", 0, None, "champion", 4, 600.0, 2.0),  # no key: scored, never labelled
        ("r4", None, AT, D, "/v1/predict", None, None, None, None, None, None, None, 0.5)
        + ("rejected", "empty list"),
        _row("r5", 0, "L1", "champion", 4, 900.0, 1.0, day=D - dt.timedelta(days=1)),
    ]
    return spark.createDataFrame(rows, LOG_SCHEMA)


def test_traffic_counts_each_model_and_the_refused(spark, log):
    got = {r.model_alias: r for r in online.traffic(online.served_on(log, D)).collect()}
    assert set(got) == {"champion", "challenger", online.REJECTED}
    c = got["champion"]
    assert (c.model_version, c.requests, c.rows) == (4, 2, 3)  # r5 was served the day before
    assert c.mean_prediction == pytest.approx(300.0) and c.latency_p50_ms == 1.0
    assert c.latency_p99_ms == 2.0
    assert (got["challenger"].rows, got["challenger"].model_version) == (1, 5)
    assert (got[online.REJECTED].rows, got[online.REJECTED].model_version) == (1, None)


def test_scored_records_parse_the_features_and_keys_with_their_types(spark, log):
    recs = online.scored_records(online.served_on(log, D), FEATURES, KEYS)
    assert recs.schema["sqft"].dataType == T.IntegerType()
    got = sorted((r.listing_id or "", r.sqft, r.zip) for r in recs.collect())
    assert got == [("", 1000, "98105")] + [(k, 1000, "98105") for k in ("L1", "L2", "L3")]


def test_quality_per_model_counts_labels_after_the_request_only(spark, log):
    labels = spark.createDataFrame(
        [
            ("L1", AT + dt.timedelta(days=3), 110.0),  # after the request: counts
            ("L2", AT - dt.timedelta(hours=1), 999.0),  # before it: the entity's old sale
            ("L3", AT + dt.timedelta(days=1), 330.0),
        ],
        "listing_id string, label_ts timestamp, label double",
    )
    recs = online.scored_records(online.served_on(log, D), FEATURES, KEYS)
    q = online.alias_quality(recs, labels, ["listing_id"], "regression", ("rmse", "mae"))
    got = {(r.role, r.metric): r for r in q.collect()}
    assert got[("champion", "rmse")].matured_labels == 1  # L1 only: L2's label came before
    assert got[("champion", "rmse")].value == pytest.approx(10.0)
    assert got[("champion", "rmse")].predictions == 2  # the keyless record is not matched
    assert got[("challenger", "mae")].value == pytest.approx(30.0)
    assert got[("challenger", "mae")].model_version == 5
