"""A label on the entity's own table with a declared label time (`label.event_time` other than
`features.timestamp`) and a derived regression label (`log(delay_minutes + 1)`), on tiny silver
tables in Europe/Berlin: the label is dated by its own time (an order placed late on one local
day and delivered after midnight is a label of the next day), the outcome's time and value
never reach the feature table, and a row without a label time is a null label counted under
`on_null: drop`."""

import datetime as dt
import math

import pytest
import yaml
from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.jobs import build_features, build_training_set
from lakeloop.jobs.common import JobError
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT

T = dt.datetime
D1, D2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _pipeline(cfg, tmp_path, on_null="drop"):
    d = yaml.safe_load((ROOT / "conf/pipelines/deliveries.yaml").read_text())
    d["expectations"][0]["project"]["columns"] = {
        "delivered_at": "ordered_at + make_dt_interval(0, 0, CAST(delay_minutes AS INT), 0)"
    }
    d["features"].update(aggregates=[], lookups=[])
    d.pop("model")
    d["label"] = {
        "source": "silver_orders",
        "table": "training_set",
        "expr": "log(delay_minutes + 1)",
        "name": "log_delay",
        "event_time": "delivered_at",
        "on_null": on_null,
    }
    path = tmp_path / f"deliveries-{on_null}.yaml"
    path.write_text(yaml.safe_dump(d))
    return load_pipeline(cfg, str(path))


@pytest.fixture
def lake(spark, cfg, tmp_path):
    p = _pipeline(cfg, tmp_path)
    rows = [  # (region, order_no, ordered_at UTC, delay) -> delivered_at = ordered + delay
        ("north", 1, T(2026, 3, 2, 10, 0), 20.0),  # 11:20 Berlin on D1
        ("north", 2, T(2026, 3, 2, 22, 30), 40.0),  # placed 23:30 D1, delivered 00:10 D2
        ("south", 1, T(2026, 3, 2, 12, 0), None),  # not delivered: no label time
    ]
    spark.createDataFrame(
        [
            (r, n, at, d, at + dt.timedelta(minutes=d) if d else None, "v1", 3.0, 2, D1, i)
            for i, (r, n, at, d) in enumerate(rows)
        ],
        "region string, order_no long, ordered_at timestamp, delay_minutes double, "
        "delivered_at timestamp, vendor string, distance_km double, items int, "
        "_ingest_date date, _source_position long",
    ).write.format("delta").save(p.table_path("silver_orders"))
    build_features.run(spark, p, D1)
    return p


def test_the_label_is_dated_by_its_own_time_and_never_a_feature(spark, lake):
    p = lake
    assert p.spec.label_excluded_features == {"delay_minutes", "delivered_at"}
    feats = delta_io.read(spark, p.table_path("features"))
    assert not {"delay_minutes", "delivered_at"} & set(feats.columns)
    assert feats.count() == 3

    rec = build_training_set.run(spark, p, D1)
    ts = delta_io.read(spark, p.table_path("training_set"))
    got = {(r["region"], r["order_no"]): r for r in ts.collect()}
    assert list(got) == [("north", 1)]  # order 2 is a label of D2; south 1 has none yet
    assert got[("north", 1)]["log_delay"] == pytest.approx(math.log(21))
    assert got[("north", 1)]["label_ts"] == T(2026, 3, 2, 10, 20)
    assert got[("north", 1)]["_has_features"]
    assert rec.output_counts["training_set.null_labels_dropped"] == 1

    build_training_set.run(spark, p, D2)
    ts = delta_io.read(spark, p.table_path("training_set"))
    assert sorted((r["region"], r["order_no"]) for r in ts.collect()) == [
        ("north", 1),
        ("north", 2),
    ]
    late = ts.where((F.col("region") == "north") & (F.col("order_no") == 2)).first()
    assert late["_has_features"] and late["feature_ts"] == T(2026, 3, 2, 22, 30)


def test_a_row_without_a_label_time_is_a_null_label_under_on_null_error(spark, lake, cfg, tmp_path):
    strict = _pipeline(cfg, tmp_path, on_null="error")
    with pytest.raises(JobError, match=r"1 of 2 label rows .* region=south, order_no=1"):
        build_training_set.run(spark, strict, D1)
    assert delta_io.version(spark, strict.table_path("training_set")) is None
