import datetime as dt

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakeloop.transforms.bronze import (
    csv_listing_records,
    dead_letters,
    good_records,
    json_listing_records,
    kafka_records,
    offset_ranges,
)

D = dt.date(2026, 1, 5)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("n", T.IntegerType()),
        T.StructField("x", T.DoubleType()),
    ]
)
P1 = 1 << 33  # monotonically_increasing_id of the first row of partition 1


def _lines(spark, values):
    rows = [(v, "f.json", i) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, "value string, _source_file string, _row_id long")


def test_json_lines_keep_every_row_with_position_and_reason(spark):
    lines = _lines(
        spark,
        [
            '{"id": "a", "n": 1, "x": 2.5}',
            '{"id": "b", "n": "one"}',
            '{"id": "c", "n": 1',
            "",
            '{"id": "d", "n": 2, "extra": true}',
        ],
    )
    out = json_listing_records(lines, SCHEMA, D).select(
        "id", "n", "x", "_source_position", "_raw", "_error"
    )
    expected = spark.createDataFrame(
        [
            ("a", 1, 2.5, 1, None, None),
            (None, None, None, 2, '{"id": "b", "n": "one"}', "column n: 'one' is not a valid int"),
            (None, None, None, 3, '{"id": "c", "n": 1', "not a JSON object"),
            (None, None, None, 4, "", "empty line"),
            (
                None,
                None,
                None,
                5,
                '{"id": "d", "n": 2, "extra": true}',
                "unexpected field(s) not in the schema: extra",
            ),
        ],
        out.schema,
    )
    assertDataFrameEqual(out, expected)


def test_csv_reasons_name_the_field_count_or_the_column(spark):
    raw = spark.createDataFrame(
        [
            ("a", 1, 1.0, None, "f.csv", 0),
            (None, None, None, "b,2", "f.csv", 1),
            (None, None, None, 'c,2,3.0,"x,y",9', "f.csv", P1 + 2),
            (None, None, None, 'd,"two",1.5', "f.csv", 3),
        ],
        "id string, n int, x double, _corrupt_record string, _source_file string, _row_id long",
    )
    out = csv_listing_records(raw, SCHEMA, D).select(
        "id", "_source_position", "_error", "_ingest_date"
    )
    expected = spark.createDataFrame(
        [
            ("a", 1, None, D),
            (None, 2, "too few fields: expected 3, found 2", D),
            (None, 3, "too many fields: expected 3, found 5", D),  # row index within partition 1
            (None, 4, "column n: 'two' is not a valid int", D),
        ],
        out.schema,
    )
    assertDataFrameEqual(out, expected)


def _messages(spark, values):
    rows = [(b"k", v, "t", i % 2, 10 + i, dt.datetime(2026, 1, 5)) for i, v in enumerate(values)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )


def test_kafka_records_split_into_bronze_and_dead_letters(spark):
    msgs = _messages(
        spark,
        [
            b'{"id": "a", "n": 1, "x": 1.0}',
            b"\x00not json",
            b'{"id": "b", "n": 2, "x": "cheap"}',
            None,
            b'{"id": "c", "n": 3, "x": 3.0}',
        ],
    )
    records = kafka_records(msgs, SCHEMA, 7, D)
    good = good_records(records, SCHEMA).select("id", "_partition", "_offset", "_batch_id")
    assertDataFrameEqual(
        good, spark.createDataFrame([("a", 0, 10, 7), ("c", 0, 14, 7)], good.schema)
    )
    dead = dead_letters(records).select("_offset", "_error")
    assertDataFrameEqual(
        dead,
        spark.createDataFrame(
            [
                (11, "not a JSON object"),
                (12, "column x: 'cheap' is not a valid double"),
                (13, "null message value"),
            ],
            dead.schema,
        ),
    )
    assert dead_letters(records).where("_offset = 11").first()["_value"] == b"\x00not json"


def test_offset_ranges_follow_kafka_end_offset_convention(spark):
    records = kafka_records(_messages(spark, [b'{"id": "a"}'] * 4 + [b"bad"]), SCHEMA, 0, D)
    out = offset_ranges(records)
    assertDataFrameEqual(
        out, spark.createDataFrame([("t", 0, 10, 15, 3, 1), ("t", 1, 11, 14, 2, 0)], out.schema)
    )
