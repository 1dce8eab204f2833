"""build_features with a spec that does not fit the data: a SpecError naming the spec key and
the column, exit code 2 from the command line, and nothing written to the feature table."""

import datetime as dt
import os
import subprocess
import sys

import pytest

from lakeloop import delta_io
from lakeloop.config import SpecError
from lakeloop.jobs import build_features
from tests.conftest import ROOT, spec_variant

D = dt.date(2026, 1, 2)
T = dt.datetime


def _silver(spark, p):
    """Tiny silver tables in the spec's shape: one listing per day, one sale before D."""
    spark.createDataFrame(
        [
            ("L1", T(2026, 1, 1, 9), "98101", 1500, 3, 2.0, 1990, 5000, dt.date(2026, 1, 1), 1),
            ("L2", T(2026, 1, 2, 9), "98101", 1800, 3, 2.0, 2000, 6000, D, 1),
        ],
        "listing_id string, listed_at timestamp, zipcode string, sqft int, bedrooms int, "
        "bathrooms double, year_built int, lot_sqft int, _ingest_date date, "
        "_source_position long",
    ).write.format("delta").save(p.table_path("silver_listings"))
    spark.createDataFrame(
        [("S1", "L1", "98101", 300_000.0, T(2026, 1, 1, 18), D)],
        "sale_id string, listing_id string, zipcode string, sale_price double, "
        "sold_at timestamp, _ingest_date date",
    ).write.format("delta").save(p.table_path("silver_sales"))


def test_unknown_column_in_a_feature_expression_exits_2_with_one_line(spark, cfg, tmp_path):
    def edit(d):
        d["features"]["columns"]["total_rooms"] = "bedrooms + bathroomz"

    p, spec_file = spec_variant(cfg, tmp_path, edit)
    _silver(spark, p)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "lakeloop.cli", "run", "build_features"),
            *("--pipeline", str(spec_file), "--date", D.isoformat(), "--env", "test"),
            *("--set", f"lakehouse_root={p.root}", "--set", "spark.shuffle_partitions=1"),
        ],
        env={**os.environ, "LAKELOOP_HOME": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "features.columns.total_rooms: unknown column `bathroomz`" in errors[0]
    assert "Traceback" not in proc.stderr
    assert delta_io.version(spark, p.table_path("features")) is None  # nothing written


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda d: d["features"]["aggregates"][1].update(expr="count(distinct sale_idd)"),
            r"^features.aggregates\[1\].expr \(zip_sales_90d\): unknown column `sale_idd`",
        ),
        (
            lambda d: d["features"].update(timestamp="listed"),
            r"^features.timestamp: unknown column 'listed' \(not in silver.houses_listings",
        ),
        (
            lambda d: d["features"]["aggregates"][2]["join"].update(time="listed_on"),
            r"^features.aggregates\[2\].join.time: unknown column 'listed_on'",
        ),
    ],
)
def test_spec_that_does_not_fit_the_tables_is_a_spec_error(spark, cfg, tmp_path, edit, message):
    p, _ = spec_variant(cfg, tmp_path, edit)
    _silver(spark, p)
    with pytest.raises(SpecError, match=message):
        build_features.run(spark, p, D)
    assert delta_io.version(spark, p.table_path("features")) is None


def test_the_tiny_tables_build_without_error(spark, cfg, tmp_path):
    """The control: the same tables with the spec as it is give L2 the sale of L1 (the day
    before) and nothing from its own day."""
    p, _ = spec_variant(cfg, tmp_path, lambda d: None)
    _silver(spark, p)
    build_features.run(spark, p, D)
    row = delta_io.read(spark, p.table_path("features")).where("listing_id = 'L2'").first()
    assert (row.zip_sales_90d, row.zip_median_price_90d) == (1, 300_000.0)
    assert row.zip_median_price_per_sqft_90d == pytest.approx(200.0)
