import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.config import SpecError
from lakeloop.spec import Lookup
from lakeloop.transforms.lookups import lookup_features

T = dt.datetime
D = dt.date
READINGS = (
    "station string, read_at timestamp, temp double, _ingest_date date, _source_position long"
)
ENTITIES = "trip_id int, station string, event_ts timestamp"


def _lookup(**kw) -> Lookup:
    args = {
        "name": "weather",
        "table": "weather",
        "key": "station",
        "time": "read_at",
        "columns": ["temp"],
        "tolerance": "2h",
    }
    return Lookup(**{**args, **kw})


def _readings(spark, rows):
    """(station, read_at, temp) rows, ingested on one day in file order."""
    return spark.createDataFrame(
        [(s, t, v, D(2026, 1, 1), i) for i, (s, t, v) in enumerate(rows, 1)], READINGS
    )


def test_lookup_takes_the_previous_reading_where_an_equi_join_on_the_hour_leaks(spark):
    # hourly readings stamped within their hour; the trip is at 10:30
    readings = _readings(
        spark, [("S", T(2026, 1, 1, 9, 45), 9.0), ("S", T(2026, 1, 1, 10, 45), 10.0)]
    )
    entities = spark.createDataFrame([(1, "S", T(2026, 1, 1, 10, 30))], ENTITIES)
    hour = F.date_trunc("hour", "event_ts") == F.date_trunc("hour", "read_at")
    naive = entities.join(readings, ["station"]).where(hour).select("trip_id", "temp")
    # the equi-join on the hour hands the trip a reading taken 15 minutes after it
    assertDataFrameEqual(naive, spark.createDataFrame([(1, 10.0)], naive.schema))
    got = lookup_features(entities, readings, _lookup(), "event_ts")
    expected = spark.createDataFrame(
        [(1, "S", T(2026, 1, 1, 10, 30), 9.0)], f"{ENTITIES}, temp double"
    )
    assertDataFrameEqual(got, expected)


def test_tolerance_exact_time_missing_readings_and_duplicates(spark):
    t = T(2026, 1, 1, 10, 30)
    readings = _readings(
        spark,
        [
            ("A", T(2026, 1, 1, 8, 29), 1.0),  # 2h01m before: too old for 2h
            ("B", T(2026, 1, 1, 8, 30), 2.0),  # exactly 2h before: taken
            ("C", T(2026, 1, 1, 10), 3.0),
            ("C", t, 4.0),  # at exactly the entity's time: taken
            ("C", t + dt.timedelta(seconds=1), 5.0),  # one second after: never
            (None, t, 6.0),  # a null key matches nothing
            ("E", None, 7.0),  # nor does a null time
        ],
    )
    entities = spark.createDataFrame(
        [
            (1, "A", t),
            (2, "B", t),
            (3, "C", t),
            (4, "D", t),  # no reading at all
            (4, "D", t),  # an exact duplicate: both rows kept
            (5, None, t),
            (6, "E", t),
            (7, "C", None),  # no time: nulls, row kept
        ],
        ENTITIES,
    )
    got = lookup_features(entities, readings, _lookup(), "event_ts")
    assert got.columns == [*entities.columns, "temp"]
    expected = spark.createDataFrame(
        [
            (1, "A", t, None),
            (2, "B", t, 2.0),
            (3, "C", t, 4.0),
            (4, "D", t, None),
            (4, "D", t, None),
            (5, None, t, None),
            (6, "E", t, None),
            (7, "C", None, None),
        ],
        f"{ENTITIES}, temp double",
    )
    assertDataFrameEqual(got, expected)


def test_composite_key_matches_every_column(spark):
    t = T(2026, 1, 1, 10, 30)
    readings = spark.createDataFrame(
        [
            ("north", 1, T(2026, 1, 1, 10), 1.0),
            ("south", 1, T(2026, 1, 1, 10, 20), 2.0),  # station 1 alone would take this one
            ("north", 2, T(2026, 1, 1, 10, 25), 3.0),  # region alone would take this one
        ],
        "region string, station bigint, read_at timestamp, temp double",
    )
    # the entity's columns have other names (and an int station: integer widths unify)
    entities = spark.createDataFrame(
        [(1, "north", 1, t), (2, "south", 2, t)],
        "trip_id int, area string, stn int, event_ts timestamp",
    )
    lookup = _lookup(key=["region", "station"], entity_columns=["area", "stn"], order_by=[])
    got = lookup_features(entities, readings, lookup, "event_ts")
    expected = spark.createDataFrame(
        [(1, "north", 1, t, 1.0), (2, "south", 2, t, None)], got.schema
    )
    assertDataFrameEqual(got, expected)


def test_ties_on_time_go_to_the_latest_ingested_then_last_in_file_and_columns_rename(spark):
    at = T(2026, 1, 1, 10)
    readings = spark.createDataFrame(
        [
            ("S", at, 1.0, D(2026, 1, 2), 5),  # re-delivered a day later: wins
            ("S", at, 2.0, D(2026, 1, 1), 9),
            ("U", at, 5.0, D(2026, 1, 1), 3),
            ("U", at, 4.0, D(2026, 1, 1), 7),  # same day, later in the file: wins
            ("U", at, 6.0, D(2026, 1, 1), None),  # no position: loses
        ],
        READINGS,
    )
    entities = spark.createDataFrame([(1, "S", T(2026, 1, 1, 11)), (2, "U", at)], ENTITIES)
    lookup = _lookup(columns={"air_temp": "temp", "reading_at": "read_at"})
    got = lookup_features(entities, readings, lookup, "event_ts")
    expected = spark.createDataFrame(
        [(1, "S", T(2026, 1, 1, 11), 1.0, at), (2, "U", at, 4.0, at)],
        f"{ENTITIES}, air_temp double, reading_at timestamp",
    )
    assertDataFrameEqual(got, expected)


def test_a_spec_that_does_not_fit_the_data_names_the_spec_key(spark):
    readings = _readings(spark, [("S", T(2026, 1, 1, 9), 9.0)])
    entities = spark.createDataFrame([(1, "S", T(2026, 1, 1, 10))], ENTITIES)

    w = r"features\.lookups\[weather\]"

    def fails(match, lookup=None, ents=entities, table=readings, time="event_ts"):
        with pytest.raises(SpecError, match=match):
            lookup_features(ents, table, lookup or _lookup(), time)

    fails(
        "^" + w + r"\.columns: unknown column 'tmp' \(not in the lookup table",
        _lookup(columns=["tmp"]),
    )
    fails(w + r"\.key: unknown column 'stationn'", _lookup(key="stationn"))
    fails(w + r"\.time: unknown column 'ts'", _lookup(time="ts"))
    fails(
        w + r"\.order_by: unknown column '_ingest_date'",
        table=readings.drop("_ingest_date"),
    )
    fails(
        w + r"\.entity_columns: unknown column 'stn' \(not in the entity rows",
        _lookup(entity_columns="stn"),
    )
    fails(
        w + r"\.key: unknown column 'station' \(not in the entity rows",
        ents=entities.drop("station"),
    )
    fails(w + r" \(the entity time\): unknown column 'ts'", time="ts")
    fails(
        w + r"\.columns: feature name\(s\) \['trip_id'\] are columns of the entity rows",
        _lookup(columns={"trip_id": "temp"}),
    )
    fails(
        w
        + r"\.time: column 'read_at' of the lookup table \(weather\) must be a timestamp, not string",
        table=readings.withColumn("read_at", F.col("read_at").cast("string")),
    )
    fails(
        r"the entity time\): column 'event_ts' of the entity rows must be a timestamp, not date",
        ents=entities.withColumn("event_ts", F.col("event_ts").cast("date")),
    )
    fails(
        w + r"\.key: key column 'station' is string in the entity rows but bigint",
        table=readings.withColumn("station", F.lit(1).cast("bigint")),
    )
    with pytest.raises(SpecError, match=r"^features\.lookups\[0\]\.columns: unknown column"):
        lookup_features(
            entities, readings, _lookup(columns=["tmp"]), "event_ts", "features.lookups[0]"
        )
