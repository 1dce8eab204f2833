import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.spec import Column
from lakeloop.transforms.bronze import (
    batch_stats,
    csv_listing_records,
    dead_letters,
    good_records,
    json_listing_records,
    kafka_records,
    offset_ranges,
    ranges_of,
)

D = dt.date(2026, 1, 5)
SCHEMA = [
    Column(name="id", type="string"),
    Column(name="n", type="int"),
    Column(name="x", type="double"),
]
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


# --- timestamps: declared unit / format, range -------------------------------------------------

TS_MS = [Column(name="id", type="string"), Column(name="ts", type="timestamp", unit="ms")]
TS_ISO = [Column(name="id", type="string"), Column(name="ts", type="timestamp")]
NUMBER_WITHOUT_UNIT = (
    "column ts: '1767225600123' is a number, not a timestamp: declare the column's unit "
    "(s, ms or us since 1970-01-01) or format"
)
OUTSIDE = "is outside 1970-01-01 .. 2200-01-01 (set the column's min/max to allow it)"


def _utc(df, col="ts"):
    """The instant as UTC text (independent of the Python process's local zone)."""
    return F.date_format(F.col(col), "yyyy-MM-dd HH:mm:ss.SSS").alias(col)


def test_epoch_millis_with_unit_ms_is_the_right_instant_in_json_lines(spark):
    lines = _lines(
        spark,
        [
            '{"id": "a", "ts": 1767225600123}',
            '{"id": "b", "ts": "1767225600123"}',  # digits in a string: the same number
            '{"id": "c", "ts": 1.767225600123E12}',
            '{"id": "d", "ts": null}',
        ],
    )
    out = json_listing_records(lines, TS_MS, D)
    got = out.select("id", _utc(out), "_error")
    expected = [(i, "2026-01-01 00:00:00.123", None) for i in "abc"] + [("d", None, None)]
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))


def test_epoch_number_without_unit_is_malformed_and_says_to_declare_the_unit(spark):
    lines = _lines(spark, ['{"id": "a", "ts": 1767225600123}', '{"id": "b", "ts": 1767225600}'])
    out = json_listing_records(lines, TS_ISO, D).select("id", "ts", "_raw", "_error")
    expected = [
        (None, None, '{"id": "a", "ts": 1767225600123}', NUMBER_WITHOUT_UNIT),
        (None, None, '{"id": "b", "ts": 1767225600}', NUMBER_WITHOUT_UNIT.replace("123", "")),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def _csv(spark, rows, columns):
    names = ", ".join(f"{c.name} string" for c in columns)  # timestamp/date columns: text
    return spark.createDataFrame(
        [(*r, None, "f.csv", i) for i, r in enumerate(rows)],
        f"{names}, _corrupt_record string, _source_file string, _row_id long",
    )


def test_csv_format_parses_day_first_and_a_mismatch_is_malformed_with_the_record(spark):
    columns = [
        Column(name="id", type="string"),
        Column(name="ts", type="timestamp", format="dd/MM/yyyy HH:mm"),
        Column(name="d", type="date", format="dd.MM.yyyy"),
    ]
    raw = _csv(
        spark,
        [("a", "05/01/2026 14:30", "31.12.2025"), ("b", "2026-01-05 14:30", "1.1.2026")],
        columns,
    )
    out = csv_listing_records(raw, columns, D)
    got = out.select("id", _utc(out), "d", "_raw", "_error")
    expected = [
        ("a", "2026-01-05 14:30:00.000", dt.date(2025, 12, 31), None, None),
        (
            None,
            None,
            None,
            "b,2026-01-05 14:30,1.1.2026",  # the record's fields written back as CSV
            "column ts: '2026-01-05 14:30' does not match the format 'dd/MM/yyyy HH:mm'; "
            "column d: '1.1.2026' does not match the format 'dd.MM.yyyy'",
        ),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))


def test_impossible_years_and_unparsable_text_are_malformed_never_stored(spark):
    seconds = [Column(name="id", type="string"), Column(name="ts", type="timestamp", unit="s")]
    lines = _lines(
        spark,
        [
            '{"id": "a", "ts": 1767225600123}',  # milliseconds declared as seconds: year 57970
            '{"id": "b", "ts": "soon"}',
            '{"id": "c", "ts": 1767225600}',
            '{"id": "d", "ts": 1e40}',  # no instant at all (and no overflow)
        ],
    )
    out = json_listing_records(lines, seconds, D)
    got = out.select("id", _utc(out), "_error")
    expected = [
        (
            None,
            None,
            "column ts: '1767225600123' read as seconds since 1970-01-01 is outside "
            "1970-01-01 .. 2200-01-01 (is the unit right? Else set the column's min/max)",
        ),
        (None, None, "column ts: 'soon' is not a number of seconds since 1970-01-01 (unit s)"),
        ("c", "2026-01-01 00:00:00.000", None),
        (
            None,
            None,
            "column ts: '1.0E40' read as seconds since 1970-01-01 is outside 1970-01-01 .. "
            "2200-01-01 (is the unit right? Else set the column's min/max)",
        ),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))

    iso = _csv(
        spark,
        [("a", "45000-01-01T00:00:00"), ("b", "1900-05-01 10:00"), ("c", "next week"), ("d", "")],
        TS_ISO,
    )
    out = csv_listing_records(iso, TS_ISO, D).select("id", "ts", "_error")
    expected = [
        (None, None, f"column ts: '45000-01-01T00:00:00' {OUTSIDE}"),
        (None, None, f"column ts: '1900-05-01 10:00' {OUTSIDE}"),
        (
            None,
            None,
            "column ts: 'next week' is not a valid timestamp (ISO 8601 like "
            "2026-01-05T14:30:00; or declare a format)",
        ),
        ("d", None, None),  # empty: null, for validation to judge
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def test_a_column_range_can_be_widened(spark):
    columns = [
        Column(name="id", type="string"),
        Column(name="born", type="date", min=dt.date(1850, 1, 1), max=dt.date(2030, 1, 1)),
    ]
    out = csv_listing_records(
        _csv(spark, [("a", "1901-02-03"), ("b", "2031-01-01")], columns), columns, D
    ).select("id", "born", "_error")
    expected = [
        ("a", dt.date(1901, 2, 3), None),
        (
            None,
            None,
            "column born: '2031-01-01' is outside 1850-01-01 .. 2030-01-01 (set the "
            "column's min/max to allow it)",
        ),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def test_kafka_epoch_millis_and_event_date_in_the_pipeline_zone(spark):
    columns = [
        Column(name="id", type="string"),
        Column(name="sold_at", type="timestamp", unit="ms"),
    ]
    at_0230_utc = 1767580200000  # 2026-01-05T02:30:00Z = 2026-01-04 21:30 in New York
    msgs = _messages(
        spark,
        [
            f'{{"id": "a", "sold_at": {at_0230_utc}}}'.encode(),
            b'{"id": "b", "sold_at": "2026-01-05T02:30:00Z"}',
        ],
    )
    records = kafka_records(msgs, columns, 1, D, "sold_at", "America/New_York")
    good = good_records(records, columns)
    got = good.select("id", _utc(good, "sold_at"), "_ingest_date", "_event_date")
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [("a", "2026-01-05 02:30:00.000", D, dt.date(2026, 1, 4))], got.schema
        ),
    )
    dead = dead_letters(records).select("_offset", "_event_date", "_error")
    assertDataFrameEqual(
        dead,
        spark.createDataFrame(
            [
                (
                    11,
                    None,
                    "column sold_at: '2026-01-05T02:30:00Z' is not a number of milliseconds "
                    "since 1970-01-01 (unit ms)",
                )
            ],
            dead.schema,
        ),
    )
    # without an event_time_field the event date is unknown: null
    no_event = good_records(kafka_records(msgs, columns, 1, D), columns)
    assert no_event.where("_event_date is not null").count() == 0


def test_batch_stats_give_offset_ranges_and_counts_per_partition(spark):
    rows = [("t", 0, 5, None), ("t", 0, 9, "bad"), ("t", 1, 3, None), ("t", 7, 1, None)]
    df = spark.createDataFrame(rows, "_topic string, _partition int, _offset long, _error string")
    stats = df.agg(*batch_stats([0, 1, 2])).first().asDict()
    assert (stats["messages"], stats["dead_letters"], stats["other"]) == (4, 1, 1)
    assert ranges_of(stats, "t", [0, 1, 2]) == [
        {
            "topic": "t",
            "partition": 0,
            "start_offset": 5,
            "end_offset": 10,
            "messages": 2,
            "dead_letters": 1,
        },
        {
            "topic": "t",
            "partition": 1,
            "start_offset": 3,
            "end_offset": 4,
            "messages": 1,
            "dead_letters": 0,
        },
    ]  # partition 2 had no message; partition 7 is counted in `other` (the job recounts)


# Records where counting `":` could go wrong: colons and quotes in values, keys and nested
# objects, \u escapes, JSON nulls, missing and duplicate keys, whitespace, case, non-objects.
TRICKY_JSON = [
    '{"id": "a", "ts": "2026-01-05T14:30:00Z", "n": 1}',
    '{"id": "a:b:c", "ts": "14:30", "n": 1}',
    '{"id": "a", "ts": "2026-01-05 14:30:00", "n": 1, "more": "x"}',
    '{"id" : "a" , "ts" : "1:2" , "n" : 1 , "more" : 2}',
    '{"id": "a\\u003ab", "n": 1, "more": 2}',
    '{"id": "a\\u003a", "ts": "x", "n": 1}',
    '{"id": "a", "n": null, "more": 1}',
    '{"id": "a", "n": null}',
    '{"id": "a"}',
    '{"id": "a", "more": {"k": "v:w"}}',
    '{"id": "a", "ts": "x", "n": 1, "x:y": 1}',
    '{"id": "a", "id": "b:c", "n": 1, "more": 1}',
    '{"id": "a", "ts": "t", "n": 1, "ID": "b"}',
    '{"ID": "b", "ts": "t", "n": 1}',
    '{"id": {"nested": "a:b"}, "n": 1}',
    '{"id": "a", "n": 1, "ts": "::", "x": "::"}',
    '{"id": "\\"quoted\\": yes", "n": 1}',
    '{"id": "é:ü", "ts": "日本:語", "n": 1, "ß": 1}',
    '{"id": "a", "n": "1:2"}',
    "[1, 2]",
    '"a:b"',
    "{}",
    "",
    "not json: at all",
    '{"id": "a", "n": 1',
    '{"id":"a","n":1,"more":2}',
    '{"id"\t:"a","n":1,"more"\t:2}',
    '{"id":"a",\n"n":1,\n"more"\n:2}',
    '{"id"\r:"a","more"\r:2,"n":1}',
    '{"id": "x\\": y", "n": 1, "more": 2}',
    '{"id": "a", "more": 1}',
    '{"x\\":y": 1, "id": "a", "n": 1}',
    '{"id": "a", "ts": "\\":", "n": 1}',
]


def test_the_cheap_unexpected_field_test_answers_as_the_full_parse(spark):
    """`unexpected_fields` with the parsed record (the `":` count, no second parse for most
    records) gives the same reason as the full key parse on every record."""
    from pyspark.sql import types as T

    from lakeloop.transforms.bronze import no_unexpected_fields, unexpected_fields

    schema = T.StructType(
        [
            T.StructField("id", T.StringType()),
            T.StructField("ts", T.StringType()),
            T.StructField("n", T.IntegerType()),
        ]
    )
    df = spark.createDataFrame([(r,) for r in TRICKY_JSON], "raw string").select(
        "raw", F.from_json("raw", schema).alias("_j")
    )
    raw, parsed = F.col("raw"), F.col("_j")
    out = df.select(
        "raw",
        unexpected_fields(raw, schema).alias("full"),
        unexpected_fields(raw, schema, parsed).alias("cheap"),
        no_unexpected_fields(raw, parsed, schema).alias("cleared"),
    ).collect()
    differ = [(r["raw"], r["full"], r["cheap"]) for r in out if r["full"] != r["cheap"]]
    assert not differ
    found = {r["raw"]: r["full"] for r in out}
    assert found['{"id": "a", "n": null, "more": 1}'].endswith(": more")
    assert found['{"id": "a", "ts": "t", "n": 1, "ID": "b"}'].endswith(": ID")
    assert found['{"id": "é:ü", "ts": "日本:語", "n": 1, "ß": 1}'].endswith(": ß")
    # the cheap test clears the usual record (timestamps' colons and all) without a parse
    cleared = {r["raw"]: r["cleared"] for r in out}
    assert cleared['{"id": "a", "ts": "2026-01-05T14:30:00Z", "n": 1}']
    assert cleared['{"id": "a:b:c", "ts": "14:30", "n": 1}']
    assert cleared['{"id": "a\\u003a", "ts": "x", "n": 1}']
    assert not cleared['{"id" : "a" , "ts" : "1:2" , "n" : 1 , "more" : 2}']  # ' :': no answer


def test_a_filter_on_the_reason_parses_each_message_once_behind_parsed_once(spark):
    """good_records/dead_letters filter on `_error`. Spark pushes such a filter below the
    JSON parse and parses again for each field the reasons read; behind `parsed_once` the
    plan parses as `kafka_records` alone does (the record, and a rejected one as text)."""
    from lakeloop.transforms.bronze import parsed_once

    records = kafka_records(_messages(spark, [b'{"id": "a", "n": 1}', b"bad"]), SCHEMA, 1, D)

    def parses(df) -> int:
        return df._jdf.queryExecution().optimizedPlan().toString().count("from_json")

    once = parses(records)
    assert parses(dead_letters(records)) > 2 * once  # the trap parsed_once avoids
    assert parses(dead_letters(parsed_once(records, "t_dead"))) == once
    assert parses(good_records(parsed_once(records, "t_good"), SCHEMA)) == once
    dead = dead_letters(parsed_once(records, "t_rows")).select("_offset", "_error").collect()
    assert [(r["_offset"], r["_error"] is not None) for r in dead] == [(11, True)]
