"""Bronze transforms: parsed records with lineage; malformed input kept with its raw text and a
reason (never dropped). The jobs in lakeloop.jobs read the inputs and write the outputs."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop.schemas import KAFKA_LINEAGE

CORRUPT = "_corrupt_record"
# Bits of monotonically_increasing_id that hold the row's index within its partition.
_ROW_INDEX_MASK = (1 << 33) - 1
# A comma outside double quotes (a CSV field separator).
_CSV_SEPARATOR = r""",(?=(?:[^"]*"[^"]*")*[^"]*$)"""


def _type_errors(values: dict[str, Column], schema: T.StructType) -> Column:
    """'column sqft: "about 2000" is not a valid int; ...' for every value that cannot be cast."""
    checks = []
    for f in schema.fields:
        if isinstance(f.dataType, T.StringType):
            continue
        v = values[f.name]
        bad = v.isNotNull() & (F.trim(v) != "") & v.try_cast(f.dataType).isNull()
        checks.append(
            F.when(
                bad,
                F.format_string(
                    f"column {f.name}: '%s' is not a valid {f.dataType.simpleString()}",
                    v.substr(1, 120),
                ),
            )
        )
    return F.concat_ws("; ", *checks) if checks else F.lit("")


def _with_reason(detail: Column, fallback: str) -> Column:
    return F.when(F.length(detail) > 0, detail).otherwise(F.lit(fallback))


def csv_error(raw: Column, schema: T.StructType) -> Column:
    """Why a CSV record did not parse: a wrong field count, or which value has the wrong type."""
    tokens = F.split(raw, _CSV_SEPARATOR)
    n = F.size(tokens)
    expected = len(schema.fields)
    unquote = {
        f.name: F.regexp_replace(F.get(tokens, i), r'^"|"$', "")
        for i, f in enumerate(schema.fields)
    }
    return (
        F.when(n < expected, F.format_string(f"too few fields: expected {expected}, found %d", n))
        .when(n > expected, F.format_string(f"too many fields: expected {expected}, found %d", n))
        .otherwise(_with_reason(_type_errors(unquote, schema), "record does not match the schema"))
    )


def json_error(raw: Column, schema: T.StructType) -> Column:
    """Why a JSON record did not parse: not a JSON object, or which value has the wrong type."""
    values = {f.name: F.get_json_object(raw, f"$.{f.name}") for f in schema.fields}
    return (
        F.when(raw.isNull() | (F.trim(raw) == ""), F.lit("empty record"))
        .when(F.json_object_keys(raw).isNull(), F.lit("not a JSON object"))
        .otherwise(
            _with_reason(_type_errors(values, schema), "a value does not match the schema type")
        )
    )


def unexpected_fields(raw: Column, schema: T.StructType) -> Column:
    """Error text when a JSON object carries fields the schema does not declare (a schema change
    upstream must not be silently dropped)."""
    extra = F.array_except(
        F.json_object_keys(raw), F.array(*[F.lit(f.name) for f in schema.fields])
    )
    return F.when(
        F.size(extra) > 0,
        F.concat(F.lit("unexpected field(s) not in the schema: "), F.array_join(extra, ", ")),
    )


def _null_data_when_malformed(schema: T.StructType, error: Column) -> list[Column]:
    return [F.when(error.isNull(), F.col(f.name)).alias(f.name) for f in schema.fields]


def csv_listing_records(raw: DataFrame, schema: T.StructType, ingest_date: dt.date) -> DataFrame:
    """Rows of a PERMISSIVE CSV read (schema + `_corrupt_record`, `_source_file`, `_row_id`) as
    bronze rows. A malformed record keeps its raw text and reason; its data columns are null."""
    error = F.when(F.col(CORRUPT).isNotNull(), csv_error(F.col(CORRUPT), schema))
    return _bronze(raw.withColumn("_error", error), schema, "csv", F.col(CORRUPT), ingest_date)


def json_listing_records(lines: DataFrame, schema: T.StructType, ingest_date: dt.date) -> DataFrame:
    """Text lines (`value`, `_source_file`, `_row_id`) of JSON-lines files as bronze rows."""
    parse_schema = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())])
    parsed = lines.withColumn(
        "_j",
        F.from_json(
            "value", parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
        ),
    )
    error = (
        F.when(F.trim(F.col("value")) == "", F.lit("empty line"))
        .when(F.col(f"_j.{CORRUPT}").isNotNull(), json_error(F.col("value"), schema))
        .otherwise(unexpected_fields(F.col("value"), schema))
    )
    flat = parsed.select("*", *[F.col(f"_j.{f.name}").alias(f.name) for f in schema.fields])
    return _bronze(flat.withColumn("_error", error), schema, "json", F.col("value"), ingest_date)


def _bronze(
    df: DataFrame, schema: T.StructType, fmt: str, raw: Column, ingest_date: dt.date
) -> DataFrame:
    return df.select(
        *_null_data_when_malformed(schema, F.col("_error")),
        F.col("_source_file"),
        ((F.col("_row_id").bitwiseAND(F.lit(_ROW_INDEX_MASK))) + 1).alias("_source_position"),
        F.lit(fmt).alias("_source_format"),
        F.when(F.col("_error").isNotNull(), raw).alias("_raw"),
        F.col("_error"),
        F.lit(ingest_date).cast("date").alias("_ingest_date"),
    )


def kafka_records(
    messages: DataFrame, schema: T.StructType, batch_id: int, ingest_date: dt.date
) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, timestamp) parsed as JSON with lineage;
    `_error` is null for a good record and says why otherwise. Keeps `_value` (the raw bytes;
    `dead_letters` adds their text) so a cached batch holds each message once."""
    raw = F.col("value").cast("string")
    parse_schema = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())])
    j = F.from_json(raw, parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    parsed = messages.select("*", raw.alias("_raw"), j.alias("_j"))
    error = (
        F.when(F.col("value").isNull(), F.lit("null message value"))
        .when(F.trim(F.col("_raw")) == "", F.lit("empty message value"))
        .when(F.col(f"_j.{CORRUPT}").isNotNull(), json_error(F.col("_raw"), schema))
        .otherwise(unexpected_fields(F.col("_raw"), schema))
    )
    return parsed.select(
        *[F.col(f"_j.{f.name}").alias(f.name) for f in schema.fields],
        F.col("topic").alias("_topic"),
        F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"),
        F.col("timestamp").alias("_kafka_timestamp"),
        F.col("key").cast("string").alias("_key"),
        F.lit(batch_id).cast("long").alias("_batch_id"),
        F.lit(ingest_date).cast("date").alias("_ingest_date"),
        F.col("value").alias("_value"),
        error.alias("_error"),
    )


def good_records(records: DataFrame, schema: T.StructType) -> DataFrame:
    """The well-formed rows of `kafka_records`, as bronze rows (no raw text)."""
    return records.where(F.col("_error").isNull()).select(
        *schema.fieldNames(), *KAFKA_LINEAGE.fieldNames()
    )


def dead_letters(records: DataFrame) -> DataFrame:
    """The malformed rows of `kafka_records`, with raw text, raw bytes and the reason."""
    return records.where(F.col("_error").isNotNull()).select(
        *KAFKA_LINEAGE.fieldNames(),
        F.col("_value").cast("string").alias("_raw"),
        "_value",
        "_error",
    )


def offset_ranges(records: DataFrame) -> DataFrame:
    """Per topic-partition: first offset and the offset after the last (Kafka's convention)."""
    return records.groupBy(
        F.col("_topic").alias("topic"), F.col("_partition").alias("partition")
    ).agg(
        F.min("_offset").alias("start_offset"),
        (F.max("_offset") + 1).alias("end_offset"),
        F.count(F.lit(1)).alias("messages"),
        F.count(F.col("_error")).alias("dead_letters"),
    )
