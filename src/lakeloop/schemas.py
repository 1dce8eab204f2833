"""Spark schemas: the fixed tables as StructType constants, and spec columns -> StructType."""

from __future__ import annotations

from pyspark.sql import types as T

from lakeloop.spec import Column

SPARK_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def struct_of(columns: list[Column]) -> T.StructType:
    # Bronze keeps every row, so parsed columns are nullable whatever the spec says; the
    # spec's `nullable: false` is enforced by validation (quarantine), not by dropping rows.
    return T.StructType([T.StructField(c.name, SPARK_TYPES[c.type], True) for c in columns])


TEMPORAL = ("timestamp", "date")


def read_struct(columns: list[Column]) -> T.StructType:
    """The schema a source is read with: timestamp/date columns as strings (lakeloop parses
    them itself per the column's format/unit and range, see transforms.bronze), the others
    typed, so Spark's reader rejects a wrong number or boolean."""
    return T.StructType(
        [
            T.StructField(c.name, T.StringType() if c.type in TEMPORAL else SPARK_TYPES[c.type])
            for c in columns
        ]
    )


# Lineage columns added to every bronze row read from files.
FILE_LINEAGE = T.StructType(
    [
        T.StructField("_source_file", T.StringType(), False),
        # 1-based ordinal of the record in its file (header excluded); for JSON lines and CSV
        # without quoted newlines this is also the data line number.
        T.StructField("_source_position", T.LongType(), False),
        T.StructField("_source_format", T.StringType(), False),
        T.StructField("_raw", T.StringType(), True),  # only kept for malformed rows
        T.StructField("_error", T.StringType(), True),  # null = well-formed
        T.StructField("_ingest_date", T.DateType(), False),
    ]
)

# Lineage columns of every bronze/dead-letter row read from Kafka.
KAFKA_LINEAGE = T.StructType(
    [
        T.StructField("_topic", T.StringType(), False),
        T.StructField("_partition", T.IntegerType(), False),
        T.StructField("_offset", T.LongType(), False),
        T.StructField("_kafka_timestamp", T.TimestampType(), True),
        T.StructField("_key", T.StringType(), True),
        T.StructField("_batch_id", T.LongType(), False),
        T.StructField("_ingest_date", T.DateType(), False),  # the run's date: arrival
        # the local date (pipeline timezone) of the source's event_time_field; null without one
        # and on dead-letter rows
        T.StructField("_event_date", T.DateType(), True),
    ]
)

DEAD_LETTER = T.StructType(
    [
        *KAFKA_LINEAGE.fields,
        T.StructField("_raw", T.StringType(), True),
        T.StructField("_value", T.BinaryType(), True),  # the message bytes, losslessly
        T.StructField("_error", T.StringType(), False),
    ]
)

# The columns Delta keeps per-file statistics of (min, max, null count: data skipping), by kind
# of table: those lakeloop's reads filter on, beside partition columns. Delta's default (the
# first 32 columns) cost ~30% of a bronze write's CPU (the wide text columns _raw, _error,
# _source_file; `make bench-ingest`). Set when a write creates the table, and once on a table
# an earlier lakeloop created (delta_io.keep_properties).
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze_files": (),  # read by _ingest_date: its partition column
    # unpartitioned: read by arrival or event date, and per topic/partition for offsets
    "bronze_kafka": ("_topic", "_partition", "_offset", "_ingest_date", "_event_date"),
    "predictions": ("model_version",),  # partitioned by prediction_date
}

OFFSET_RANGE = T.StructType(
    [
        T.StructField("topic", T.StringType(), False),
        T.StructField("partition", T.IntegerType(), False),
        T.StructField("start_offset", T.LongType(), True),
        T.StructField("end_offset", T.LongType(), True),
    ]
)

RUN_LOG = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("pipeline", T.StringType(), False),
        T.StructField("run_date", T.DateType(), True),
        T.StructField("env", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), False),
        T.StructField("duration_s", T.DoubleType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("input_counts", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("output_counts", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("kafka_offsets", T.ArrayType(OFFSET_RANGE), True),
        T.StructField("delta_versions", T.MapType(T.StringType(), T.ArrayType(T.LongType())), True),
        T.StructField("details", T.MapType(T.StringType(), T.StringType()), True),
        T.StructField("error", T.StringType(), True),
    ]
)
