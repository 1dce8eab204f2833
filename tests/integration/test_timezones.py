"""Dates in the pipeline's time zone, end to end on files: a day's listings in Los Angeles
(UTC-8), a third of which fall on the next UTC date, become exactly that day's feature rows,
build_features reports the rows it wrote, and predict refuses a day whose entities are not all
in the feature table (a late listing of D1 that arrived with D2's file)."""

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.generate import houses as gen
from lakeloop.jobs import build_features, ingest_files, predict, validate
from lakeloop.jobs.common import JobError
from tests.conftest import spec_variant

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
LA = "America/Los_Angeles"
LATE = "L20260101-900001"  # listed on D1, delivered with D2


@pytest.fixture
def la_listings(cfg, tmp_path):
    """houses in Los Angeles time, listings only (no Kafka, no window aggregates)."""

    def edit(d):
        d["timezone"] = LA
        d["expectations"] = [e for e in d["expectations"] if e["source"] == "bronze_listings"]
        d["features"]["aggregates"] = []

    p, _ = spec_variant(cfg, tmp_path, edit)
    gen.generate(p, start=D1, days=2, rows_per_day=120, malformed=0.0, produce=False)
    return p


def _late_listing(p, day: dt.date, listed_at: str) -> None:
    """One more JSON listing in `day`'s landing folder, listed at `listed_at`."""
    folder = Path(p.file_glob(p.spec.sources.files[1], day)).parent
    row = {
        "listing_id": LATE,
        "listed_at": listed_at,
        "zipcode": "98101",
        "sqft": 1500,
        "bedrooms": 3,
        "bathrooms": 2.0,
        "year_built": 1990,
        "lot_sqft": 5000,
        "condition": "good",
        "has_garage": True,
        "description": "arrived a day late",
    }
    (folder / "late.json").write_text(json.dumps(row) + "\n")


def test_a_local_day_is_one_feature_date_and_predict_needs_all_its_entities(spark, la_listings):
    p = la_listings
    # 23:50 on Jan 1 in Los Angeles = 07:50 on Jan 2 UTC, delivered with Jan 2's file
    _late_listing(p, D2, "2026-01-01T23:50:00-08:00")
    for d in (D1, D2):
        ingest_files.run(spark, p, d)
        validate.run(spark, p, d)
    rec = build_features.run(spark, p, D1)
    assert (
        delta_io.read(spark, p.table_path("silver_listings"))
        .where(F.col("listing_id") == LATE)
        .count()
        == 1
    )

    silver = delta_io.read(spark, p.table_path("silver_listings"))
    day1 = silver.where(F.col("_ingest_date") == D1)
    n_entities = day1.count()
    # the property under test: many of D1's listings have the next UTC date
    next_utc = day1.where(F.to_date("listed_at") == F.lit(D2)).count()
    assert next_utc >= n_entities // 5, (next_utc, n_entities)
    features = delta_io.read(spark, p.table_path("features"))
    written = features.where(F.col("feature_date") == D1).count()
    assert rec.output_counts["features"] == written == n_entities
    assert features.where(F.col("feature_date") != D1).count() == 0

    # D2's file brought a listing of D1 (local) that D1's build_features could not see
    with pytest.raises(JobError) as e:
        predict.run(spark, p, D1)
    msg = str(e.value)
    assert f"1 of the {n_entities + 1} entities of 2026-01-01 ({LA})" in msg
    assert "arrived on 2026-01-02" in msg and "run build_features" in msg
    assert delta_io.version(spark, p.table_path("predictions")) is None

    build_features.run(spark, p, D2)
    late = delta_io.read(spark, p.table_path("features")).where(F.col("listing_id") == LATE)
    assert [(r.feature_date, r.feature_ts) for r in late.collect()] == [
        (D1, dt.datetime(2026, 1, 2, 7, 50))
    ]
