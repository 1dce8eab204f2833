import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from lakeloop.transforms.training import naive_latest_join, point_in_time_training_set

T = dt.datetime
D = dt.date
LABELS = "listing_id string, sold_at timestamp, price double"
FEATURES = "listing_id string, feature_ts timestamp, sqft int, feature_date date"
OUT = (
    "listing_id string, sold_at timestamp, price double, feature_ts timestamp, sqft int, "
    "feature_date date, _has_features boolean"
)


def _features(spark, rows):
    """(listing_id, feature_ts, sqft) rows; feature_date is the day of feature_ts."""
    return spark.createDataFrame([(k, t, v, t.date()) for k, t, v in rows], FEATURES)


def _pit(labels, features, lookback_days=30, **kw):
    return point_in_time_training_set(
        labels, features, "listing_id", "sold_at", "feature_ts", lookback_days, **kw
    )


def test_pit_takes_the_past_value_where_the_naive_join_leaks_the_future(spark):
    t1, t2, t3 = T(2026, 3, 1), T(2026, 3, 5), T(2026, 3, 9)
    labels = spark.createDataFrame([("A", t2, 500.0)], LABELS)
    features = _features(spark, [("A", t1, 1), ("A", t3, 3)])
    expected = spark.createDataFrame([("A", t2, 500.0, t1, 1, t1.date(), True)], OUT)
    assertDataFrameEqual(_pit(labels, features), expected)
    leaked = spark.createDataFrame([("A", t2, 500.0, t3, 3, t3.date(), True)], OUT)
    assertDataFrameEqual(naive_latest_join(labels, features, "listing_id", "feature_ts"), leaked)


def test_feature_older_than_the_lookback_gives_null_features_but_keeps_the_label(spark):
    labels = spark.createDataFrame(
        [("A", T(2026, 3, 31, 12), 1.0), ("B", T(2026, 3, 31, 12), 2.0)], LABELS
    )
    features = _features(
        spark,
        [
            ("A", T(2026, 3, 1, 11, 59, 59), 7),  # 30 days + 1 s before: out
            ("B", T(2026, 3, 1, 12), 8),  # exactly 30 days before: in
        ],
    )
    expected = spark.createDataFrame(
        [
            ("A", T(2026, 3, 31, 12), 1.0, None, None, None, False),
            ("B", T(2026, 3, 31, 12), 2.0, T(2026, 3, 1, 12), 8, D(2026, 3, 1), True),
        ],
        OUT,
    )
    assertDataFrameEqual(_pit(labels, features, lookback_days=30), expected)


def test_feature_at_the_label_time_counts_one_second_later_does_not(spark):
    t = T(2026, 3, 5, 10)
    labels = spark.createDataFrame([("A", t, 1.0), ("B", t, 2.0)], LABELS)
    features = _features(
        spark,
        [
            ("A", T(2026, 3, 4), 1),
            ("A", t, 2),  # at the label time: taken
            ("B", T(2026, 3, 4), 3),
            ("B", t + dt.timedelta(seconds=1), 4),  # one second after: never taken
        ],
    )
    got = _pit(labels, features).select("listing_id", "sqft")
    assertDataFrameEqual(got, spark.createDataFrame([("A", 2), ("B", 3)], got.schema))


def test_each_label_gets_its_own_as_of_row_and_duplicates_are_kept(spark):
    labels = spark.createDataFrame(
        [
            ("A", T(2026, 3, 2), 1.0),
            ("A", T(2026, 3, 6), 2.0),
            ("A", T(2026, 3, 6), 2.0),  # an exact duplicate: two output rows
            ("A", T(2026, 3, 20), 3.0),
            ("B", T(2026, 3, 6), 4.0),
            ("C", T(2026, 3, 6), 5.0),  # no feature rows at all
            (None, T(2026, 3, 6), 6.0),  # a null key matches nothing
            ("A", None, 7.0),  # neither does a null time
        ],
        LABELS,
    )
    features = _features(
        spark,
        [
            ("A", T(2026, 3, 1), 10),
            ("A", T(2026, 3, 5), 50),
            ("A", T(2026, 3, 15), 150),
            ("B", T(2026, 3, 1), 20),
            ("B", T(2026, 3, 1), 21),  # a tie on feature_ts: the larger row wins, always
            ("B", T(2026, 3, 7), 70),
        ],
    )
    got = _pit(labels, features)
    assert got.count() == labels.count()
    got = got.select("listing_id", "price", "sqft", "_has_features")
    expected = spark.createDataFrame(
        [
            ("A", 1.0, 10, True),
            ("A", 2.0, 50, True),
            ("A", 2.0, 50, True),
            ("A", 3.0, 150, True),
            ("B", 4.0, 21, True),
            ("C", 5.0, None, False),
            (None, 6.0, None, False),
            ("A", 7.0, None, False),
        ],
        got.schema,
    )
    assertDataFrameEqual(got, expected)


def test_naive_join_keeps_every_label_row(spark):
    labels = spark.createDataFrame([("A", T(2026, 3, 2), 1.0)] * 2 + [("C", None, 2.0)], LABELS)
    features = _features(spark, [("A", T(2026, 3, 1), 1), ("A", T(2026, 3, 1), 2)])
    got = naive_latest_join(labels, features, "listing_id", "feature_ts")
    got = got.select("listing_id", "sqft", "_has_features")
    expected = spark.createDataFrame(
        [("A", 2, True), ("A", 2, True), ("C", None, False)], got.schema
    )
    assertDataFrameEqual(got, expected)


def test_label_date_bounds_prune_feature_date_partitions(spark, tmp_path):
    rows = [("A", T(2026, 1, d, 12), d) for d in range(1, 29)]
    path = str(tmp_path / "features")
    _features(spark, rows).write.partitionBy("feature_date").parquet(path)
    features = spark.read.parquet(path)
    labels = spark.createDataFrame([("A", T(2026, 1, 20, 18), 1.0)], LABELS)
    out = _pit(
        labels, features, lookback_days=3, label_date_bounds=(D(2026, 1, 20), D(2026, 1, 20))
    )
    key = "spark.sql.maxMetadataStringLength"  # plans print up to 100 chars per list by default
    old = spark.conf.get(key)
    spark.conf.set(key, "10000")
    try:
        plan = out._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.set(key, old)
    scan = next(line for line in plan.splitlines() if "FileScan parquet" in line)
    partition_filters = scan.split("PartitionFilters: [", 1)[1].split(", PushedFilters", 1)[0]
    # lookback + a day's margin either side: 2026-01-16 .. 2026-01-21
    assert "feature_date" in partition_filters, scan
    assert "2026-01-16" in partition_filters and "2026-01-21" in partition_filters, scan
    assert out.select("sqft").first()["sqft"] == 20


def test_without_bounds_no_partition_column_is_needed(spark):
    labels = spark.createDataFrame([("A", T(2026, 3, 2), 1.0)], LABELS)
    features = _features(spark, [("A", T(2026, 3, 1), 1)]).drop("feature_date")
    assert _pit(labels, features).first()["sqft"] == 1
    with pytest.raises(ValueError, match="feature_date"):
        _pit(labels, features, label_date_bounds=(D(2026, 3, 2), D(2026, 3, 2)))


def test_missing_or_bad_columns_raise_clear_errors(spark):
    labels = spark.createDataFrame([("A", T(2026, 3, 2), 1.0)], LABELS)
    features = _features(spark, [("A", T(2026, 3, 1), 1)])
    with pytest.raises(ValueError, match=r"features: column\(s\) \['listing_id'\] not found"):
        _pit(labels, features.withColumnRenamed("listing_id", "id"))
    with pytest.raises(ValueError, match=r"features: column\(s\) \['listing_id'\] not found"):
        naive_latest_join(labels, features.drop("listing_id"), "listing_id", "feature_ts")
    with pytest.raises(ValueError, match=r"labels: column\(s\) \['sold_at'\] not found"):
        _pit(labels.drop("sold_at"), features)
    with pytest.raises(ValueError, match="must be a timestamp"):
        _pit(labels.withColumn("sold_at", labels["sold_at"].cast("date")), features)
    with pytest.raises(ValueError, match=r"both have column\(s\) \['sqft'\]"):
        _pit(labels.withColumn("sqft", labels["price"]), features)
    with pytest.raises(ValueError, match="is string in labels but bigint in features"):
        _pit(labels, features.withColumn("listing_id", features["sqft"].cast("long")))
    with pytest.raises(ValueError, match="lookback_days"):
        _pit(labels, features, lookback_days=-1)
    with pytest.raises(ValueError, match="after upper bound"):
        _pit(labels, features, label_date_bounds=(D(2026, 3, 2), D(2026, 3, 1)))


def test_ties_pick_the_same_row_in_both_joins_whatever_the_column_types(spark):
    labels = spark.createDataFrame([("A", T(2026, 3, 9), 1.0)], LABELS)
    # feature_ts is not the first feature column, and a map column is not orderable
    features = spark.createDataFrame(
        [
            ("A", 9, {"k": 1}, T(2026, 3, 8)),
            ("A", 5, {"k": 2}, T(2026, 3, 8)),
            ("A", 5, {"k": 3}, T(2026, 3, 8)),
            ("A", 1, {"k": 9}, T(2026, 3, 1)),
        ],
        "listing_id string, score int, tags map<string,int>, feature_ts timestamp",
    )
    pit = _pit(labels, features).select("score", "tags")
    naive = naive_latest_join(labels, features, "listing_id", "feature_ts")
    expected = spark.createDataFrame([(9, {"k": 1})], pit.schema)
    assertDataFrameEqual(pit, expected)
    assertDataFrameEqual(naive.select("score", "tags"), expected)
    maps_only = features.drop("score")
    assertDataFrameEqual(
        _pit(labels, maps_only).select("tags"),
        spark.createDataFrame([({"k": 3},)], "tags map<string,int>"),
    )
    assertDataFrameEqual(
        naive_latest_join(labels, maps_only, "listing_id", "feature_ts").select("tags"),
        spark.createDataFrame([({"k": 3},)], "tags map<string,int>"),
    )


def test_integer_keys_of_different_widths_still_match(spark):
    labels = spark.createDataFrame([(7, T(2026, 3, 2))], "listing_id int, sold_at timestamp")
    features = spark.createDataFrame(
        [(7, T(2026, 3, 1), 1)], "listing_id bigint, feature_ts timestamp, sqft int"
    )
    got = _pit(labels, features)
    assert got.schema["listing_id"].dataType.simpleString() == "int"
    assert got.first()["sqft"] == 1
    assert naive_latest_join(labels, features, "listing_id", "feature_ts").first()["sqft"] == 1


CLABELS = "region string, listing_id int, sold_at timestamp, price double"
CFEATURES = "region string, listing_id bigint, feature_ts timestamp, sqft int"


def test_composite_key_matches_on_every_key_column(spark):
    t = T(2026, 3, 10)
    labels = spark.createDataFrame(
        [
            ("north", 1, t, 1.0),
            ("south", 1, t, 2.0),
            ("north", None, t, 3.0),  # a null key column: no features
            (None, 1, t, 4.0),
        ],
        CLABELS,
    )
    features = spark.createDataFrame(
        [
            ("north", 1, T(2026, 3, 1), 100),
            # same listing_id in another region, later (closer to the label): matching on
            # listing_id alone would pick it for north/1
            ("south", 1, T(2026, 3, 9), 200),
            ("north", None, T(2026, 3, 9), 300),  # null key columns never match
            (None, 1, T(2026, 3, 9), 400),
            ("north", 2, T(2026, 3, 9), 500),  # region alone would pick this for north/1
        ],
        CFEATURES,
    )
    got = point_in_time_training_set(
        labels, features, ["region", "listing_id"], "sold_at", "feature_ts", 30
    )
    assert got.columns == [*labels.columns, "feature_ts", "sqft", "_has_features"]
    assert got.schema["listing_id"].dataType.simpleString() == "int"  # widths unify per column
    expected = spark.createDataFrame(
        [
            ("north", 1, t, 1.0, T(2026, 3, 1), 100, True),
            ("south", 1, t, 2.0, T(2026, 3, 9), 200, True),
            ("north", None, t, 3.0, None, None, False),
            (None, 1, t, 4.0, None, None, False),
        ],
        got.schema,
    )
    assertDataFrameEqual(got, expected)
    naive = naive_latest_join(labels, features, ["region", "listing_id"], "feature_ts")
    assertDataFrameEqual(naive, expected)  # one feature row per key: the latest is the as-of
    one_column = point_in_time_training_set(
        labels.drop("region"), features.drop("region"), "listing_id", "sold_at", "feature_ts", 30
    )
    # listing_id alone takes a later row of another region for north/1: the wrong one
    assert one_column.where("price = 1.0").first()["sqft"] in (200, 400)


def test_composite_key_errors_name_the_column(spark):
    labels = spark.createDataFrame([("north", 1, T(2026, 3, 2), 1.0)], CLABELS)
    features = spark.createDataFrame([("north", 1, T(2026, 3, 1), 1)], CFEATURES)
    key = ["region", "listing_id"]
    with pytest.raises(ValueError, match=r"features: column\(s\) \['region'\] not found"):
        point_in_time_training_set(
            labels, features.drop("region"), key, "sold_at", "feature_ts", 30
        )
    with pytest.raises(ValueError, match="'listing_id' is int in labels but string in features"):
        naive_latest_join(
            labels,
            features.withColumn("listing_id", features["listing_id"].cast("string")),
            key,
            "feature_ts",
        )
    with pytest.raises(ValueError, match="listed twice"):
        point_in_time_training_set(
            labels, features, ["region", "region"], "sold_at", "feature_ts", 30
        )
    with pytest.raises(ValueError, match="entity_key must be"):
        point_in_time_training_set(labels, features, [], "sold_at", "feature_ts", 30)
