"""materialize: the latest feature row per entity as of D (local dates in New York) from a
small Delta feature table to the SQLite online store; re-runs, older dates, failure paths."""

from __future__ import annotations

import datetime as dt
import struct
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import types as T

from lakeloop import runlog
from lakeloop.config import OnlineStoreSettings
from lakeloop.jobs import materialize
from lakeloop.jobs.common import JobError
from lakeloop.serving.online_store import SqliteOnlineStore
from tests.conftest import spec_variant

ZONE = "America/New_York"
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
SCHEMA = T.StructType(
    [
        T.StructField("listing_id", T.StringType(), False),
        T.StructField("listed_at", T.TimestampType()),
        T.StructField("zipcode", T.StringType()),
        T.StructField("sqft", T.IntegerType()),
        T.StructField("lot_sqft", T.LongType()),
        T.StructField("bathrooms", T.DoubleType()),
        T.StructField("has_garage", T.BooleanType()),
        T.StructField("description", T.StringType()),
        T.StructField("zip_median_price_90d", T.DoubleType()),
        T.StructField("_source", T.StringType()),  # internal: never stored
        T.StructField("feature_ts", T.TimestampType()),
        T.StructField("feature_date", T.DateType()),
    ]
)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def feature_row(key, ts, sqft=1000, bathrooms=2.0, zip_median=None, description="nice"):
    """A feature table row; feature_date is the local date of `ts` in New York."""
    day = ts.astimezone(ZoneInfo(ZONE)).date()
    return (key, ts, "10001", sqft, 2**40 + sqft, bathrooms, sqft % 2 == 0, description,
            zip_median, "file-1", ts, day)  # fmt: skip


ROWS = [
    feature_row("L1", utc(2026, 1, 1, 15), sqft=900, zip_median=0.1 + 0.2),
    # 23:30 on Jan 2 in New York (Jan 3 in UTC): dated D2
    feature_row("L1", utc(2026, 1, 3, 4, 30), sqft=901, zip_median=1e-300, description="東京 é"),
    feature_row("L1", utc(2026, 1, 3, 12), sqft=902, zip_median=None, description=None),
    # 22:00 on Jan 1 in New York: dated D1
    feature_row("L2", utc(2026, 1, 2, 3), sqft=500, bathrooms=None),
    # two rows with the same timestamp: the greater bathrooms (first stored column by name) wins
    feature_row("L2", utc(2026, 1, 2, 20), sqft=510, bathrooms=1.5),
    feature_row("L2", utc(2026, 1, 2, 20), sqft=520, bathrooms=2.5),
    # a tie decided by a null: a null is below any value
    feature_row("L4", utc(2026, 1, 1, 12), sqft=700, bathrooms=None),
    feature_row("L4", utc(2026, 1, 1, 12), sqft=701, bathrooms=1.0),
    feature_row("L3", utc(2026, 1, 3, 18), sqft=800),  # only from D3 on
]


@pytest.fixture
def serving_cfg(cfg, tmp_path):
    """The test config with the online store in the test's own folder."""
    store = OnlineStoreSettings(path=tmp_path / "online" / "online.db")
    return cfg.model_copy(
        update={"serving": cfg.serving.model_copy(update={"online_store": store})}
    )


def pipeline_with(serving_cfg, tmp_path, serving: bool = True):
    def edit(d):
        d["timezone"] = ZONE
        if serving:
            d["serving"] = {}
        else:
            d.pop("serving", None)

    return spec_variant(serving_cfg, tmp_path, edit)[0]


def write_features(spark, pipeline, rows=ROWS) -> None:
    path = pipeline.table_path(pipeline.spec.features.table)
    df = spark.createDataFrame(rows, SCHEMA)
    df.write.format("delta").partitionBy("feature_date").save(path)


def delta_rows(spark, pipeline) -> list[dict]:
    """The feature table as it is in Delta, with the values as the store keeps them."""
    path = pipeline.table_path(pipeline.spec.features.table)
    out = []
    for r in spark.read.format("delta").load(path).collect():
        d = r.asDict()
        for c, v in d.items():
            if isinstance(v, dt.datetime):  # collected naive in this process's zone
                d[c] = v.astimezone(dt.UTC).isoformat()
            elif isinstance(v, dt.date):
                d[c] = v.isoformat()
        out.append(d)
    return out


def expected_as_of(rows: list[dict], date: dt.date) -> dict[str, dict]:
    """The latest row per key dated <= `date`, computed here: by feature_ts, feature_date,
    then the other stored columns in name order, greatest first, a null lowest."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["feature_date"] > date.isoformat():
            continue
        rest = sorted(set(r) - {"listing_id", "feature_ts", "feature_date", "_source"})
        rank = (r["feature_ts"], r["feature_date"], *[(r[c] is not None, r[c]) for c in rest])
        if r["listing_id"] not in best or rank > best[r["listing_id"]][0]:
            best[r["listing_id"]] = (rank, r)
    return {k: {c: v for c, v in r.items() if c != "_source"} for k, (_, r) in best.items()}


def exact(row: dict | None) -> dict | None:
    """A row with its floats as their bits, so that equality is bit-exact (and typed)."""
    if row is None:
        return None
    return {
        c: ("float", struct.pack("<d", v)) if isinstance(v, float) else (type(v).__name__, v)
        for c, v in row.items()
    }


def stored(pipeline, keys=("L1", "L2", "L3", "L4", "L9")) -> dict[str, dict | None]:
    with SqliteOnlineStore(pipeline.cfg.path(pipeline.cfg.serving.online_store.path)) as s:
        got = s.get(pipeline.name, [{"listing_id": k} for k in keys])
        assert s.count(pipeline.name) == sum(g is not None for g in got)
    return dict(zip(keys, got, strict=True))


def test_latest_row_per_key_as_of_the_date(spark, serving_cfg, tmp_path):
    pipeline = pipeline_with(serving_cfg, tmp_path)
    write_features(spark, pipeline)
    in_delta = delta_rows(spark, pipeline)
    assert len(in_delta) == len(ROWS)

    # several partitions, each its own SQLite transaction (AQE would make one of this tiny data)
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        rec = materialize.run(spark, pipeline, D2)
    finally:
        spark.conf.unset("spark.sql.adaptive.coalescePartitions.enabled")
    assert rec.details["partitions"] == "2"
    want = expected_as_of(in_delta, D2)
    got = stored(pipeline)
    assert sorted(k for k, v in got.items() if v) == sorted(want) == ["L1", "L2", "L4"]
    for key in want:
        assert exact(got[key]) == exact(want[key]), key
    # what the rule picks, stated by hand
    assert got["L1"]["sqft"] == 901 and got["L1"]["feature_ts"] == "2026-01-03T04:30:00+00:00"
    assert got["L1"]["feature_date"] == "2026-01-02" and got["L1"]["description"] == "東京 é"
    assert got["L1"]["zip_median_price_90d"] == 1e-300 and got["L1"]["lot_sqft"] == 2**40 + 901
    assert got["L2"]["sqft"] == 520 and got["L4"]["sqft"] == 701
    assert got["L2"]["has_garage"] is True and got["L4"]["has_garage"] is False
    assert "_source" not in got["L1"]
    assert rec.input_counts == {"feature_rows": 7, "entities": 3}
    assert rec.output_counts["online_store"] == 3
    assert rec.output_counts["online_store.entities"] == 3

    # D3: newer rows replace older ones, a new entity arrives
    rec3 = materialize.run(spark, pipeline, D3)
    want3 = expected_as_of(in_delta, D3)
    after3 = stored(pipeline)
    assert {k: exact(v) for k, v in after3.items()} == {k: exact(want3.get(k)) for k in after3}
    assert after3["L1"]["sqft"] == 902 and after3["L1"]["description"] is None
    assert after3["L1"]["zip_median_price_90d"] is None and after3["L3"]["sqft"] == 800
    assert rec3.output_counts["online_store"] == 4

    # re-running D3: the same store
    materialize.run(spark, pipeline, D3)
    assert {k: exact(v) for k, v in stored(pipeline).items()} == {
        k: exact(v) for k, v in after3.items()
    }

    # D2 after D3: nothing newer is replaced by something older
    rec2 = materialize.run(spark, pipeline, D2)
    assert {k: exact(v) for k, v in stored(pipeline).items()} == {
        k: exact(v) for k, v in after3.items()
    }
    # L2 and L4 have no newer row: rewritten as they were; L1's D3 row was kept
    assert rec2.output_counts["online_store"] == 2
    assert rec2.output_counts["online_store.kept_newer"] == 1

    logged = runlog.runs(spark, pipeline).where("job = 'materialize'").collect()
    assert len(logged) == 4 and {r["status"] for r in logged} == {runlog.SUCCEEDED}
    assert sorted(r["input_counts"]["feature_rows"] for r in logged) == [7, 7, 9, 9]


def test_failures_say_what_to_do(spark, serving_cfg, tmp_path):
    store_file = serving_cfg.path(serving_cfg.serving.online_store.path)
    plain = pipeline_with(serving_cfg, tmp_path, serving=False)
    with pytest.raises(JobError, match=r"no `serving:` section: add one"):
        materialize.run(spark, plain, D2)

    pipeline = pipeline_with(serving_cfg, tmp_path)
    with pytest.raises(JobError, match=r"features\.houses_listings does not exist at .*build_fea"):
        materialize.run(spark, pipeline, D2)
    assert not store_file.exists()

    write_features(spark, pipeline)
    with pytest.raises(JobError, match=r"no rows dated on or before 2025-12-31 \(America/New_Y"):
        materialize.run(spark, pipeline, D1 - dt.timedelta(days=1))
    assert not store_file.exists()
    # a file at the store's path that is not a SQLite database
    store_file.parent.mkdir(parents=True)
    store_file.write_text("not a database\n" * 100)
    with pytest.raises(JobError, match=f"online store {store_file} is not a usable SQLite"):
        materialize.run(spark, pipeline, D2)
    failed = runlog.runs(spark, pipeline).where("job = 'materialize'").collect()
    assert [r["status"] for r in failed] == [runlog.FAILED] * 3
