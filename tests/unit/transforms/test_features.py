import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from lakeloop.spec import FeaturesSpec, WindowAggregate
from lakeloop.transforms.features import (
    enriched_events,
    entity_features,
    latest_per_key,
    window_aggregate,
    with_aggregates,
)

T = dt.datetime
SPEC = FeaturesSpec.model_validate(
    {
        "source": "s",
        "table": "f",
        "timestamp": "listed_at",
        "columns": {"total_rooms": "bedrooms + bathrooms"},
    }
)
MEDIAN = WindowAggregate(
    name="zip_median",
    source="sales",
    key="zipcode",
    event_time="sold_at",
    expr="percentile_approx(sale_price, 0.5)",
    window_days=90,
)
COUNT = WindowAggregate(
    name="zip_n",
    source="sales",
    key="zipcode",
    event_time="sold_at",
    expr="count(*)",
    window_days=90,
)


def _listings(spark):
    return spark.createDataFrame(
        [
            ("L1", T(2026, 4, 1, 9), "98101", 3, 2.0, "x"),
            ("L2", T(2026, 4, 1, 10), "98102", 2, 1.0, "y"),
        ],
        "listing_id string, listed_at timestamp, zipcode string, bedrooms int, bathrooms double, "
        "_source_file string",
    )


def test_entity_features_sql_columns_no_lineage(spark):
    out = entity_features(_listings(spark), SPEC, "listing_id")
    assert "_source_file" not in out.columns
    assert {r["listing_id"]: r["total_rooms"] for r in out.collect()} == {"L1": 5.0, "L2": 3.0}
    assert out.first()["feature_date"] == dt.date(2026, 4, 1)


def test_window_aggregates_only_see_the_past(spark):
    feats = entity_features(_listings(spark), SPEC, "listing_id")
    sales = spark.createDataFrame(
        [
            ("98101", 100.0, T(2026, 3, 30)),  # in the window
            ("98101", 300.0, T(2026, 1, 15)),  # in the window (76 days before)
            ("98101", 900.0, T(2025, 12, 1)),  # older than 90 days
            (
                "98101",
                5000.0,
                T(2026, 4, 1, 8),
            ),  # same day, before listing: excluded (conservative)
            ("98101", 7000.0, T(2026, 5, 1)),  # the future
        ],
        "zipcode string, sale_price double, sold_at timestamp",
    )
    out = with_aggregates(
        feats,
        [window_aggregate(feats, sales, MEDIAN), window_aggregate(feats, sales, COUNT)],
        [MEDIAN, COUNT],
    )
    got = out.select("listing_id", "zip_median", "zip_n")
    assertDataFrameEqual(
        got, spark.createDataFrame([("L1", 100.0, 2), ("L2", None, 0)], got.schema)
    )


def test_enriched_events_join_latest_attribute(spark):
    sales = spark.createDataFrame([("L1", 10.0)], "listing_id string, sale_price double")
    listings = spark.createDataFrame([("L1", 200)], "listing_id string, sqft int")
    out = enriched_events(sales, listings, "listing_id", ["sqft"])
    assert out.first()["sqft"] == 200


def test_latest_per_key_makes_keys_unique(spark):
    df = spark.createDataFrame(
        [("a", 1, "old"), ("a", 2, "new"), ("b", 1, "only")], "k string, ts int, v string"
    )
    assertDataFrameEqual(
        latest_per_key(df, ["k"], ["ts"]),
        spark.createDataFrame([("a", 2, "new"), ("b", 1, "only")], df.schema),
    )


def test_missing_column_is_named(spark):
    with pytest.raises(ValueError, match="listed_at"):
        entity_features(spark.createDataFrame([("L1",)], "listing_id string"), SPEC, "listing_id")
