import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.config import SpecError
from lakeloop.spec import AggregateJoin, FeaturesSpec, WindowAggregate
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
JOIN = AggregateJoin(table="listings", key="listing_id", columns=["sqft"], time="listed_at")
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


def _agg(name, expr):
    return WindowAggregate(
        name=name, source="sales", key="zipcode", event_time="sold_at", expr=expr, window_days=90
    )


def test_aggregates_are_evaluated_as_written_and_empty_windows_get_sql_defaults(spark):
    feats = entity_features(_listings(spark), SPEC, "listing_id")
    sales = spark.createDataFrame(
        [  # 98101: listing A sold three times, B once, one sale without a listing id
            ("98101", "A", 100.0, T(2026, 3, 1)),
            ("98101", "A", 200.0, T(2026, 3, 2)),
            ("98101", "A", 300.0, T(2026, 3, 3)),
            ("98101", "B", 400.0, T(2026, 3, 4)),
            ("98101", None, 500.0, T(2026, 3, 5)),
            ("98102", "C", 1.0, T(2026, 5, 1)),  # 98102: only a sale after the listing
        ],
        "zipcode string, listing_id string, sale_price double, sold_at timestamp",
    )
    specs = [
        _agg("n", "count(*)"),
        _agg("n_one", "count(1)"),
        _agg("n_listings", "count(distinct listing_id)"),
        _agg("n_with_id", "count(listing_id)"),
        _agg("total", "sum(sale_price)"),
        _agg("rows_as_sum", "sum(1)"),
        _agg("median", "percentile_approx(sale_price, 0.5)"),
    ]
    out = with_aggregates(feats, [window_aggregate(feats, sales, a) for a in specs], specs)
    got = out.select("listing_id", *[a.name for a in specs])
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [
                ("L1", 5, 5, 2, 4, 1500.0, 5, 300.0),
                ("L2", 0, 0, 0, 0, None, None, None),
            ],
            got.schema,
        ),
    )


def test_enriched_events_join_latest_attribute(spark):
    sales = spark.createDataFrame(
        [("L1", 10.0, T(2026, 1, 5))], "listing_id string, sale_price double, sold_at timestamp"
    )
    listings = spark.createDataFrame(
        [("L1", 200, T(2026, 1, 1), dt.date(2026, 1, 1), 1)],
        "listing_id string, sqft int, listed_at timestamp, _ingest_date date, "
        "_source_position long",
    )
    out = enriched_events(sales, listings, JOIN, "sold_at")
    assert out.first()["sqft"] == 200


def test_enriched_events_are_as_of_the_event_and_deterministic(spark):
    """A listing seen twice with different sqft: each sale gets the row listed last before
    it; rows with the same time are ordered by ingest date, then position, never by chance."""
    sales = spark.createDataFrame(
        [
            ("S1", "L1", T(2026, 1, 5)),  # between the two listings of L1
            ("S2", "L1", T(2026, 2, 1)),  # after the relisting
            ("S3", "L1", T(2025, 12, 1)),  # before any listing: nothing to join
            ("S4", "L2", T(2026, 2, 1)),  # L2: two rows with the same listed_at
        ],
        "sale_id string, listing_id string, sold_at timestamp",
    )
    listings = spark.createDataFrame(
        [
            ("L1", 1000, T(2026, 1, 1), dt.date(2026, 1, 1), 7),
            ("L1", 2000, T(2026, 1, 20), dt.date(2026, 1, 20), 1),
            ("L2", 500, T(2026, 1, 3), dt.date(2026, 1, 3), 9),
            ("L2", 700, T(2026, 1, 3), dt.date(2026, 1, 4), 2),  # re-delivered a day later
        ],
        "listing_id string, sqft int, listed_at timestamp, _ingest_date date, "
        "_source_position long",
    )
    out = enriched_events(sales.repartition(2), listings.repartition(3), JOIN, "sold_at")
    assert {r["sale_id"]: r["sqft"] for r in out.collect()} == {
        "S1": 1000,
        "S2": 2000,
        "S3": None,
        "S4": 700,
    }
    assert set(out.columns) == {"sale_id", "listing_id", "sold_at", "sqft"}


def test_unknown_columns_are_spec_errors_naming_the_key(spark):
    listings = _listings(spark)
    bad = SPEC.model_copy(update={"columns": {"ok": "bedrooms", "total_rooms": "bedroomz + 1"}})
    with pytest.raises(
        SpecError, match=r"^features.columns.total_rooms: unknown column .*bedroomz"
    ):
        entity_features(listings, bad, "listing_id")
    with pytest.raises(SpecError, match="features.columns.ok: .*PARSE_SYNTAX_ERROR"):
        entity_features(
            listings, SPEC.model_copy(update={"columns": {"ok": "1 +* 2"}}), "listing_id"
        )
    feats = entity_features(listings, SPEC, "listing_id")
    sales = spark.createDataFrame(
        [("98101", 1.0, T(2026, 3, 1))], "zipcode string, sale_price double, sold_at timestamp"
    )
    with pytest.raises(
        SpecError, match=r"^features.aggregates\[1\].expr \(p\): unknown column .*sale_prize"
    ):
        window_aggregate(feats, sales, _agg("p", "sum(sale_prize)"), 1)
    with pytest.raises(SpecError, match=r"features.aggregates\[0\].expr \(p\): .*sale_price"):
        window_aggregate(feats, sales, _agg("p", "sale_price"), 0)  # not an aggregate
    other = _agg("p", "count(*)").model_copy(update={"event_time": "sold"})
    with pytest.raises(SpecError, match=r"features.aggregates\[p\].event_time: unknown column"):
        window_aggregate(feats, sales, other)
    with pytest.raises(SpecError, match=r"join.time: unknown column 'listed_at'"):
        enriched_events(sales, sales, JOIN.model_copy(update={"key": "zipcode"}), "sold_at")


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


LA = "America/Los_Angeles"  # UTC-8 in January


def _utc(*a):
    return dt.datetime(*a, tzinfo=dt.UTC)


def test_feature_date_and_windows_are_local_days_in_the_pipeline_zone(spark):
    """A listing at 20:30 on Jan 5 in Los Angeles is 04:30 on Jan 6 in UTC: its feature_date is
    Jan 5, and its 1-day window is Jan 4 local, midnight to midnight in Los Angeles."""
    listings = spark.createDataFrame(
        [("L1", _utc(2026, 1, 6, 4, 30), "98101", 3, 2.0)],
        "listing_id string, listed_at timestamp, zipcode string, bedrooms int, bathrooms double",
    )
    sales = spark.createDataFrame(
        [
            (_utc(2026, 1, 4, 7, 30), 100.0),  # Jan 3, 23:30 local: before the window
            (_utc(2026, 1, 4, 8, 30), 200.0),  # Jan 4, 00:30 local: in it
            (_utc(2026, 1, 5, 7, 59), 300.0),  # Jan 4, 23:59 local: in it
            (_utc(2026, 1, 5, 8, 0), 400.0),  # Jan 5, 00:00 local: the listing's own day
        ],
        "sold_at timestamp, sale_price double",
    ).withColumn("zipcode", F.lit("98101"))
    one_day = COUNT.model_copy(update={"window_days": 1})
    total = one_day.model_copy(update={"name": "zip_sum", "expr": "sum(sale_price)"})
    feats = entity_features(listings, SPEC, "listing_id", LA)
    assert feats.first()["feature_date"] == dt.date(2026, 1, 5)
    aggs = [window_aggregate(feats, sales, a, zone=LA) for a in (one_day, total)]
    row = with_aggregates(feats, aggs, [one_day, total]).first()
    assert (row["zip_n"], row["zip_sum"]) == (2, 500.0)
    # the same rows read in UTC: the listing is a Jan 6 entity and its window is Jan 5 UTC
    utc = entity_features(listings, SPEC, "listing_id")
    row = with_aggregates(
        utc, [window_aggregate(utc, sales, a) for a in (one_day, total)], [one_day, total]
    ).first()
    assert (row["feature_date"], row["zip_n"], row["zip_sum"]) == (dt.date(2026, 1, 6), 2, 700.0)


def test_composite_keys_for_aggregates_and_their_join(spark):
    """[region, vendor]: matching on vendor alone would count the other region's orders; the
    join on [region, listing] would take the other region's listing of the same number."""
    spec = FeaturesSpec(source="s", table="f", timestamp="at")
    orders = spark.createDataFrame(
        [("north", "v1", 1, T(2026, 4, 2, 9)), ("south", "v1", 1, T(2026, 4, 2, 9))],
        "region string, vendor string, no int, at timestamp",
    )
    feats = entity_features(orders, spec, ["region", "no"])
    past = spark.createDataFrame(
        [
            ("north", "v1", 7, T(2026, 4, 1, 8)),
            ("south", "v1", 7, T(2026, 4, 1, 8)),
            ("south", "v1", 8, T(2026, 4, 1, 9)),
        ],
        "region string, vendor string, listing int, at timestamp",
    )
    sizes = spark.createDataFrame(
        [("north", 7, 10.0, T(2026, 3, 1)), ("south", 7, 20.0, T(2026, 3, 1))],
        "region string, listing int, size double, listed timestamp",
    )
    join = AggregateJoin(
        table="sizes", key=["region", "listing"], columns=["size"], time="listed", order_by=[]
    )
    agg = WindowAggregate(
        name="n",
        source="o",
        key=["region", "vendor"],
        event_time="at",
        expr="count(*)",
        window_days=7,
    )
    total = WindowAggregate(
        name="size_sum",
        source="o",
        key=["region", "vendor"],
        event_time="at",
        expr="sum(size)",
        window_days=7,
        join=join,
    )
    events = enriched_events(past, sizes, join, "at")
    out = with_aggregates(
        feats,
        [window_aggregate(feats, past, agg), window_aggregate(feats, events, total)],
        [agg, total],
    ).select("region", "no", "n", "size_sum")
    assertDataFrameEqual(
        out,
        spark.createDataFrame([("north", 1, 1, 10.0), ("south", 1, 2, 20.0)], out.schema),
    )
