"""Training transforms on awkward data: label times near midnight in a non-UTC zone, and the
naive baseline's constant predictions."""

import datetime as dt

from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.ml import pipeline as mlp
from lakeloop.transforms.modeling import split_by_time, with_baseline_prediction

UTC = dt.UTC


def test_split_by_time_uses_local_days_of_the_pipelines_zone(spark):
    # New York is UTC-5 in January: 03:30Z on Jan 8 is still Jan 7 there; 05:30Z is Jan 8
    rows = [
        ("late evening Jan 7 NY", dt.datetime(2026, 1, 8, 3, 30, tzinfo=UTC)),
        ("early morning Jan 8 NY", dt.datetime(2026, 1, 8, 5, 30, tzinfo=UTC)),
        ("Jan 6", dt.datetime(2026, 1, 6, 12, tzinfo=UTC)),
    ]
    df = spark.createDataFrame(rows, "id string, t timestamp")
    train, test = split_by_time(df, "t", dt.date(2026, 1, 8), "America/New_York")
    ids = lambda d: sorted(r.id for r in d.collect())  # noqa: E731
    assert ids(train) == ["Jan 6", "late evening Jan 7 NY"]
    assert ids(test) == ["early morning Jan 8 NY"]
    # in UTC the same evening is a test-window row
    utc_train, utc_test = split_by_time(df, "t", dt.date(2026, 1, 8), "UTC")
    assert ids(utc_train) == ["Jan 6"]
    # Asia/Tokyo (UTC+9): 20:00Z on Jan 7 is already Jan 8
    tokyo = spark.createDataFrame(
        [("Jan 8 Tokyo", dt.datetime(2026, 1, 7, 20, tzinfo=UTC))], "id string, t timestamp"
    )
    assert ids(split_by_time(tokyo, "t", dt.date(2026, 1, 8), "Asia/Tokyo")[1]) == ["Jan 8 Tokyo"]


def test_baseline_prediction_columns_are_what_the_evaluators_read(spark):
    df = spark.createDataFrame([("a", 1.0), ("b", 0.0)], f"id string, {mlp.LABEL} double")
    reg = with_baseline_prediction(df, mlp.Baseline("training mean", 12.5))
    assert reg.columns == ["id", mlp.LABEL, mlp.PREDICTION]
    assert {r[mlp.PREDICTION] for r in reg.collect()} == {12.5}
    cls = with_baseline_prediction(df, mlp.Baseline("majority class 0", 0.0, 0.25))
    got = cls.select(
        "id",
        F.col(mlp.PREDICTION).alias("p"),
        vector_to_array(mlp.PROBABILITY).alias("prob"),
        vector_to_array(mlp.RAW_PREDICTION).alias("raw"),
    )
    expected = spark.createDataFrame(
        [("a", 0.0, [0.75, 0.25], [0.75, 0.25]), ("b", 0.0, [0.75, 0.25], [0.75, 0.25])],
        "id string, p double, prob array<double>, raw array<double>",
    )
    assertDataFrameEqual(got, expected)
