"""validate across dates: a sale re-delivered with a corrected price two days later supersedes
the original in silver (the original goes to quarantine of its own date, saying which date
won), whatever order the dates are validated in, re-runs change nothing, a sale arriving five
days late is validated on its arrival date, and a superseded row comes back when the row that
superseded it goes. Bronze sales rows are written directly (as ingest_kafka writes them) and the
sales suite has its row rules only, so no broker or GX is needed."""

import datetime as dt
import json
import shutil

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io
from lakeloop.config import load_config
from lakeloop.jobs import validate
from tests.conftest import ROOT, spec_variant

D1, D3, D6 = dt.date(2026, 1, 1), dt.date(2026, 1, 3), dt.date(2026, 1, 6)
DAY = "_ingest_date"
BRONZE = (
    "sale_id string, listing_id string, zipcode string, sale_price double, sold_at timestamp, "
    "_topic string, _partition int, _offset long, _kafka_timestamp timestamp, _key string, "
    "_batch_id long, _ingest_date date"
)
SUPERSEDED = "cleaning.superseded(sale_id): a later row ingested 2026-01-03"


def _sale(sale_id, price, offset, sold_at, ingest):
    listing = f"L20251220-{sale_id[1:]:0>6}"
    ts = dt.datetime.combine(ingest, dt.time(12))
    return (
        sale_id,
        listing,
        "94110",
        price,
        sold_at,
        "houses.sales",
        0,
        offset,
        ts,
        listing,
        0,
        ingest,
    )


# D1: two sales; D3: S1 again with a corrected price, and a new sale; D6: a sale sold on
# D6 - 5 days that only arrives on D6.
BRONZE_ROWS = {
    D1: [
        _sale("S1", 100_000.0, 0, dt.datetime(2025, 12, 31, 9), D1),
        _sale("S2", 200_000.0, 1, dt.datetime(2025, 12, 31, 10), D1),
    ],
    D3: [
        _sale("S1", 110_000.0, 5, dt.datetime(2025, 12, 31, 9), D3),
        _sale("S3", 300_000.0, 6, dt.datetime(2026, 1, 2, 15), D3),
    ],
    D6: [_sale("S4", 400_000.0, 9, dt.datetime(2026, 1, 1, 11), D6)],
}


def _sales_pipeline(tmp_path, name):
    """houses validating its sales only, with the sales suite's row rules only, in a lakehouse
    of its own; bronze sales of D1, D3 and D6 written."""
    exp = tmp_path / f"expectations-{name}"
    shutil.copytree(ROOT / "expectations", exp)
    suite_file = exp / "houses/bronze_sales.json"
    suite = json.loads(suite_file.read_text())
    suite["expectations"] = [
        e for e in suite["expectations"] if e["type"].startswith("expect_column_values_")
    ]
    suite_file.write_text(json.dumps(suite))
    overrides = {"lakehouse_root": str(tmp_path / name), "expectations_dir": str(exp)}
    cfg = load_config("test", overrides, project_root=ROOT)
    p, _ = spec_variant(
        cfg,
        tmp_path,
        lambda d: d.update(
            expectations=[e for e in d["expectations"] if e["source"] == "bronze_sales"]
        ),
    )
    return p


def _write_bronze(spark, p, rows):
    spark.createDataFrame(rows, BRONZE).write.format("delta").mode("append").save(
        p.table_path("bronze_sales")
    )


def _table(spark, p, key):
    df = delta_io.read(spark, p.table_path(key))
    return df.drop("_run_id") if key.startswith("quarantine") else df


def _snapshot(spark, p):
    return {k: _table(spark, p, k).localCheckpoint() for k in ("silver_sales", "quarantine_sales")}


@pytest.fixture
def sales(spark, tmp_path):
    p = _sales_pipeline(tmp_path, "forward")
    _write_bronze(spark, p, [r for rows in BRONZE_ROWS.values() for r in rows])
    return p


def _assert_invariant(spark, p, dates):
    bronze = delta_io.read(spark, p.table_path("bronze_sales"))
    for d in dates:
        n = [
            _table(spark, p, k).where(F.col(DAY) == d).count()
            for k in ("silver_sales", "quarantine_sales")
        ]
        assert bronze.where(F.col(DAY) == d).count() == sum(n), (d, n)


def test_a_corrected_redelivery_supersedes_the_original_in_any_order(spark, sales, tmp_path):
    p = sales
    validate.run(spark, p, D1)
    keys = ("silver_sales", "quarantine_sales")
    versions = {k: delta_io.version(spark, p.table_path(k)) for k in keys}
    rec = validate.run(spark, p, D3)
    assert rec.details["silver_sales.moved"] == (
        "2026-01-01: 1 moved to quarantine (superseded by a later row)"
    )
    for key, before in versions.items():  # one commit per table, D1's change included
        assert delta_io.version(spark, p.table_path(key)) == before + 1, key
    rec = validate.run(spark, p, D6)
    silver = _table(spark, p, "silver_sales")
    assert silver.groupBy("sale_id").count().where("count > 1").count() == 0
    s1 = silver.where("sale_id = 'S1'").select("sale_price", DAY).collect()
    assert [tuple(r) for r in s1] == [(110_000.0, D3)]  # the correction, once
    q = _table(spark, p, "quarantine_sales")
    original = q.where("sale_id = 'S1'").select("sale_price", DAY, "_reason").collect()
    assert [tuple(r) for r in original] == [(100_000.0, D1, SUPERSEDED)]
    # the event sold five days before it arrived is validated on its arrival date
    late = silver.where("sale_id = 'S4'").select(DAY, F.to_date("sold_at")).collect()
    assert [tuple(r) for r in late] == [(D6, dt.date(2026, 1, 1))]
    assert rec.output_counts["silver_sales"] == 1
    _assert_invariant(spark, p, (D1, D3, D6))
    forward = _snapshot(spark, p)

    # the same bronze validated in reverse order gives the same tables
    backward = _sales_pipeline(tmp_path, "backward")
    _write_bronze(spark, backward, [r for rows in BRONZE_ROWS.values() for r in rows])
    recs = [validate.run(spark, backward, d) for d in (D6, D3, D1)]
    assert "silver_sales.moved" not in recs[-1].details  # D1's S1 lost as it was validated
    for key, want in forward.items():
        assertDataFrameEqual(_table(spark, backward, key), want)
    summary = open(recs[-1].details["summary"]).read()
    assert "cleaning.superseded(sale_id) (1)" in summary
    assert "cleaning.superseded(sale_id): houses.sales[0]@0 sale_id=S1" in summary

    # re-running a date changes nothing
    for d in (D3, D1):
        validate.run(spark, p, d)
    for key, want in forward.items():
        assertDataFrameEqual(_table(spark, p, key), want)


def test_a_superseded_row_returns_when_the_row_that_won_goes(spark, sales):
    """D3 is re-ingested without S1's correction (bronze of D3 replaced): re-validating D3
    brings D1's original back to silver."""
    p = sales
    for d in (D1, D3):
        validate.run(spark, p, d)
    delta_io.replace_partition(
        spark.createDataFrame(BRONZE_ROWS[D3][1:], BRONZE),
        p.table_path("bronze_sales"),
        DAY,
        D3.isoformat(),
        "test",
    )
    rec = validate.run(spark, p, D3)
    assert rec.details["silver_sales.moved"] == (
        "2026-01-01: 1 back in silver (the row that superseded it went)"
    )
    s1 = _table(spark, p, "silver_sales").where("sale_id = 'S1'").select("sale_price", DAY)
    assert [tuple(r) for r in s1.collect()] == [(100_000.0, D1)]
    assert _table(spark, p, "quarantine_sales").where("sale_id = 'S1'").count() == 0
    _assert_invariant(spark, p, (D1, D3))
