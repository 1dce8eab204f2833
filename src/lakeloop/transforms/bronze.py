"""Bronze transforms: parsed records with lineage; malformed input kept with its raw text and a
reason (never dropped). The jobs in lakeloop.jobs read the inputs and write the outputs.

Timestamp and date columns are read as text and parsed here, per the spec column's `format`
(a Spark datetime pattern), `unit` (`s`/`ms`/`us` since the Unix epoch) or, without either, as
an ISO-8601 string (Spark's cast: `2026-01-05T14:30:00`, `2026-01-05 14:30:00Z`, `2026-01-05`).
The rule for numbers: a value that is a plain number (`1767225600000`, `1.7e12`; a JSON number
or a string of digits alike) is read as an epoch number only when the column declares `unit`;
without `unit` or `format` it makes the record malformed ("is a number: declare the column's
unit"), never a guessed instant (Spark alone would read JSON numbers as seconds). A value that
does not parse, or parses outside the column's range (`min` <= value < `max`, default
1970-01-01 .. 2200-01-01 UTC), makes the record malformed with the column and value named.
An empty value is null (a missing value is for validation to judge)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop.schemas import KAFKA_LINEAGE, TEMPORAL, read_struct
from lakeloop.spec import Column as SchemaColumn
from lakeloop.timezones import local_date

CORRUPT = "_corrupt_record"
# Bits of monotonically_increasing_id that hold the row's index within its partition.
_ROW_INDEX_MASK = (1 << 33) - 1
# A comma outside double quotes (a CSV field separator).
_CSV_SEPARATOR = r""",(?=(?:[^"]*"[^"]*")*[^"]*$)"""
# A plain decimal number, as JSON or a CSV field writes one.
_NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1}
_UNIT_NAME = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Helper columns of the transforms below: the CSV tokens / JSON text of a record Spark rejected
# (computed once per record, for the reasons), and each timestamp/date column's parsed value.
_TOKENS = "_tokens"
_TEXT = "_text"


def _parsed(c: SchemaColumn) -> str:
    return f"_parsed_{c.name}"


def _temporal(columns: list[SchemaColumn]) -> list[SchemaColumn]:
    return [c for c in columns if c.type in TEMPORAL]


def _micros(day: dt.date) -> int:
    return (dt.datetime.combine(day, dt.time(), dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)


def _parse_time(text: Column, c: SchemaColumn) -> Column:
    """A timestamp/date column's text parsed per its format/unit; null when it does not parse.
    With `unit` the result is the number itself (a decimal: a value far outside any timestamp
    is still compared with the range, and never overflows)."""
    t = F.trim(text)
    if c.unit:
        return t.try_cast("decimal(38,9)")
    if c.format:
        ts = F.try_to_timestamp(t, F.lit(c.format))
        return ts if c.type == "timestamp" else F.to_date(ts)
    return t.try_cast(c.type)


def _in_range(parsed: Column, c: SchemaColumn) -> Column:
    lo, hi = c.time_range
    if c.unit:
        per = Decimal(_MICROS_PER[c.unit])
        lo_n, hi_n = Decimal(_micros(lo)) / per, Decimal(_micros(hi)) / per
        return (parsed >= F.lit(lo_n)) & (parsed < F.lit(hi_n))
    if c.type == "timestamp":
        lo_c, hi_c = F.timestamp_micros(F.lit(_micros(lo))), F.timestamp_micros(F.lit(_micros(hi)))
        return (parsed >= lo_c) & (parsed < hi_c)
    return (parsed >= F.lit(lo)) & (parsed < F.lit(hi))


def _time_value(c: SchemaColumn) -> Column:
    """The column's value from its parsed helper column: null when it is out of range."""
    parsed = F.col(_parsed(c))
    if c.unit:  # only evaluated in range: the product cannot overflow
        value = F.timestamp_micros((parsed * F.lit(_MICROS_PER[c.unit])).cast("long"))
    else:
        value = parsed
    return F.when(_in_range(parsed, c), value)


def _time_error(text: Column, c: SchemaColumn) -> Column:
    """Why a timestamp/date value is malformed; null when it is fine or empty. Every non-empty
    value that `_time_value` leaves null gets a reason here."""
    parsed = F.col(_parsed(c))
    lo, hi = c.time_range
    # a value with a ':' is never a plain number: the regex runs only on the others (a time of
    # day is in almost every timestamp value)
    number = ~text.contains(":") & F.trim(text).rlike(_NUMBER)

    def says(what: str) -> Column:
        return F.format_string(f"column {c.name}: '%s' {what}", text.substr(1, 120))

    if c.unit:
        unit = _UNIT_NAME[c.unit]
        outside = says(
            f"read as {unit} since 1970-01-01 is outside {lo} .. {hi} (is the unit right? "
            "Else set the column's min/max)"
        )
        why = (
            F.when(parsed.isNull() & number, outside)  # too many digits for any instant
            .when(
                parsed.isNull(), says(f"is not a number of {unit} since 1970-01-01 (unit {c.unit})")
            )
            .when(~_in_range(parsed, c), outside)
        )
    else:
        outside = says(f"is outside {lo} .. {hi} (set the column's min/max to allow it)")
        if c.format:
            why = F.when(parsed.isNull(), says(f"does not match the format '{c.format}'"))
        else:
            declare = (
                "declare the column's unit (s, ms or us since 1970-01-01) or format"
                if c.type == "timestamp"
                else "declare the column's format (e.g. yyyyMMdd)"
            )
            iso = "2026-01-05T14:30:00" if c.type == "timestamp" else "2026-01-05"
            why = F.when(number, says(f"is a number, not a {c.type}: {declare}")).when(
                parsed.isNull(),
                says(f"is not a valid {c.type} (ISO 8601 like {iso}; or declare a format)"),
            )
        why = why.when(~_in_range(parsed, c), outside)
    return F.when(text.isNotNull() & (F.trim(text) != ""), why)


def _with_parsed_times(df: DataFrame, text: dict[str, Column], columns: list[SchemaColumn]):
    return df.select(
        "*", *[_parse_time(text[c.name], c).alias(_parsed(c)) for c in _temporal(columns)]
    )


def _type_errors(values: dict[str, Column], schema: T.StructType) -> Column:
    """'column sqft: "about 2000" is not a valid int; ...' for every value that cannot be cast."""
    checks = []
    for f in schema.fields:
        if isinstance(f.dataType, T.StringType):
            continue
        v = values[f.name]
        bad = (F.trim(v) != "") & v.try_cast(f.dataType).isNull()
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


def _with_error(df: DataFrame, first: Column, parts: list[Column], last: Column) -> DataFrame:
    """`_error`: `first` (a reason that makes the others moot), else the non-empty `parts`
    joined with '; ', else `last`; null for a good record. The joined parts are a column of
    their own so that no reason expression is generated twice (the code of one whole-stage
    method must stay under the JVM's 64 KB)."""
    why = "_reasons"
    return (
        df.withColumn(why, F.concat_ws("; ", *parts))
        .withColumn(
            "_error",
            F.coalesce(first, F.when(F.length(why) > 0, F.col(why)), last),
        )
        .drop(why)
    )


def csv_tokens(raw: Column) -> Column:
    """The fields of a CSV record's text, outer quotes removed (for the reasons only: Spark's
    reader parsed the record; this re-splits the ones it rejected)."""
    return F.transform(F.split(raw, _CSV_SEPARATOR), lambda t: F.regexp_replace(t, r'^"|"$', ""))


def csv_error(tokens: Column, schema: T.StructType) -> Column:
    """Why Spark rejected a CSV record (its `csv_tokens`): a wrong field count (null when the
    count is right: then `csv_type_errors` says which value has the wrong type)."""
    n = F.size(tokens)
    expected = len(schema.fields)
    return F.when(
        n < expected, F.format_string(f"too few fields: expected {expected}, found %d", n)
    ).when(n > expected, F.format_string(f"too many fields: expected {expected}, found %d", n))


def csv_type_errors(tokens: Column, schema: T.StructType) -> Column:
    return _type_errors({f.name: F.get(tokens, i) for i, f in enumerate(schema.fields)}, schema)


def _json_type_errors(text: Column, schema: T.StructType) -> Column:
    return _type_errors({f.name: text.getField(f.name) for f in schema.fields}, schema)


def _as_text(schema: T.StructType) -> T.StructType:
    return T.StructType([T.StructField(f.name, T.StringType()) for f in schema.fields])


# JSON's whitespace: where one stands before a ':', a field's separator may not follow its '"'.
_JSON_SPACE = (" ", "\t", "\n", "\r")


def no_unexpected_fields(raw: Column, parsed: Column, schema: T.StructType) -> Column:
    """True only when the JSON record `raw` (parsed into `parsed` by `schema`) cannot hold a
    top-level field outside `schema`; false when it might (then `unexpected_fields` decides).

    A cheap test in place of a second parse: the text of each top-level field is `"key":` then
    the value (JSON allows whitespace before the ':'; a record with any whitespace before a ':'
    is left to the parse). So the text holds at least one `":` per field, and when it holds no
    more of them than the schema has non-null values, every field of the record is one of the
    schema's. `substring_index` stops looking after that many: a record that passes is scanned
    once and nothing is copied."""
    present = sum(
        (F.when(parsed.getField(f.name).isNotNull(), 1).otherwise(0) for f in schema.fields),
        F.lit(0),
    )
    spaced = reduce(or_, [raw.contains(f"{w}:") for w in _JSON_SPACE])
    upto = F.call_function("substring_index", raw, F.lit('":'), present + 1)
    return ~spaced & (F.octet_length(upto) == F.octet_length(raw))


def unexpected_fields(raw: Column, schema: T.StructType, parsed: Column | None = None) -> Column:
    """Error text when a JSON object carries fields the schema does not declare (a schema change
    upstream must not be silently dropped). With `parsed` (`raw` parsed by `schema`), a record
    that `no_unexpected_fields` clears is not parsed again."""
    names = [f.name for f in schema.fields]
    extra = F.array_except(F.json_object_keys(raw), F.array(*[F.lit(n) for n in names]))
    found = F.when(
        F.size(extra) > 0,
        F.concat(F.lit("unexpected field(s) not in the schema: "), F.array_join(extra, ", ")),
    )
    if parsed is None:
        return found
    return F.when(~no_unexpected_fields(raw, parsed, schema), found)


def csv_listing_records(
    raw: DataFrame, columns: list[SchemaColumn], ingest_date: dt.date
) -> DataFrame:
    """Rows of a PERMISSIVE CSV read (`read_struct(columns)` + `_corrupt_record`,
    `_source_file`, `_row_id`) as bronze rows. A malformed record keeps its raw text and reason;
    its data columns are null. A record Spark accepted but whose timestamp/date value is
    malformed keeps as `_raw` its fields written back as one CSV record (Spark hands over the
    text only of the records it rejects)."""
    schema = read_struct(columns)
    corrupt, tokens = F.col(CORRUPT), F.col(_TOKENS)
    parsed = _with_parsed_times(
        raw.withColumn(_TOKENS, F.when(corrupt.isNotNull(), csv_tokens(corrupt))),
        {c.name: F.col(c.name) for c in columns},
        columns,
    )
    times = [_time_error(F.col(c.name), c) for c in _temporal(columns)]
    checked = _with_error(
        parsed,
        F.when(corrupt.isNotNull(), csv_error(tokens, schema)),
        [F.when(corrupt.isNotNull(), csv_type_errors(tokens, schema)), *times],
        F.when(corrupt.isNotNull(), F.lit("record does not match the schema")),
    )
    rebuilt = F.to_csv(F.struct(*[c.name for c in columns]), {"escape": '"'})
    return _bronze(checked, columns, "csv", F.coalesce(corrupt, rebuilt), ingest_date)


def json_listing_records(
    lines: DataFrame, columns: list[SchemaColumn], ingest_date: dt.date
) -> DataFrame:
    """Text lines (`value`, `_source_file`, `_row_id`) of JSON-lines files as bronze rows."""
    value = F.col("value")
    parsed = _with_parsed_json(lines, value, columns)
    empty = F.when(F.trim(value) == "", F.lit("empty line"))
    checked = _with_json_error(parsed, value, empty, columns).select(
        "*", *[F.col(f"_j.{c.name}").alias(c.name) for c in columns if c.type not in TEMPORAL]
    )
    return _bronze(checked, columns, "json", value, ingest_date)


def _with_parsed_json(df: DataFrame, raw: Column, columns: list[SchemaColumn]) -> DataFrame:
    """`_j`: the record parsed (timestamp/date fields as text), `_text`: a record Spark
    rejected parsed again with every field as text (for the reasons), and the parsed times."""
    schema = read_struct(columns)
    opts = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    parse_schema = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())])
    j = df.select("*", F.from_json(raw, parse_schema, opts).alias("_j"))
    rejected = F.col(f"_j.{CORRUPT}").isNotNull()
    j = j.withColumn(_TEXT, F.when(rejected, F.from_json(raw, _as_text(schema))))
    return _with_parsed_times(j, {c.name: F.col(f"_j.{c.name}") for c in columns}, columns)


def _with_json_error(
    df: DataFrame, raw: Column, empty: Column, columns: list[SchemaColumn]
) -> DataFrame:
    """`_error` of a record parsed by `_with_parsed_json` (`empty`: the reason for a blank
    record, else null)."""
    schema = read_struct(columns)
    rejected = F.col(f"_j.{CORRUPT}").isNotNull()
    not_object = F.when(rejected & F.json_object_keys(raw).isNull(), F.lit("not a JSON object"))
    times = [_time_error(F.col(f"_j.{c.name}"), c) for c in _temporal(columns)]
    return _with_error(
        df,
        F.coalesce(empty, not_object),
        [
            F.when(rejected, _json_type_errors(F.col(_TEXT), schema)),
            *times,
            unexpected_fields(raw, schema, F.col("_j")),
        ],
        F.when(rejected, F.lit("a value does not match the schema type")),
    )


def _null_data_when_malformed(columns: list[SchemaColumn], error: Column) -> list[Column]:
    return [F.when(error.isNull(), _data(c)).alias(c.name) for c in columns]


def _data(c: SchemaColumn) -> Column:
    return _time_value(c) if c.type in TEMPORAL else F.col(c.name)


def _bronze(
    df: DataFrame, columns: list[SchemaColumn], fmt: str, raw: Column, ingest_date: dt.date
) -> DataFrame:
    return df.select(
        *_null_data_when_malformed(columns, F.col("_error")),
        F.col("_source_file"),
        ((F.col("_row_id").bitwiseAND(F.lit(_ROW_INDEX_MASK))) + 1).alias("_source_position"),
        F.lit(fmt).alias("_source_format"),
        F.when(F.col("_error").isNotNull(), raw).alias("_raw"),
        F.col("_error"),
        F.lit(ingest_date).cast("date").alias("_ingest_date"),
    )


def kafka_records(
    messages: DataFrame,
    columns: list[SchemaColumn],
    batch_id: int,
    ingest_date: dt.date,
    event_time_field: str | None = None,
    zone: str = "UTC",
) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, timestamp) parsed as JSON with lineage;
    `_error` is null for a good record and says why otherwise. `_event_date` is the local date
    in `zone` of the `event_time_field` of a good record (null without one). Keeps `_value`
    (the raw bytes; `dead_letters` adds their text) so a cached batch holds each message once."""
    raw = F.col("_raw")
    parsed = _with_parsed_json(
        messages.select("*", F.col("value").cast("string").alias("_raw")), raw, columns
    )
    empty = F.when(F.col("value").isNull(), F.lit("null message value")).when(
        F.trim(raw) == "", F.lit("empty message value")
    )
    records = _with_json_error(parsed, raw, empty, columns).select(
        *[
            (_time_value(c) if c.type in TEMPORAL else F.col(f"_j.{c.name}")).alias(c.name)
            for c in columns
        ],
        F.col("topic").alias("_topic"),
        F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"),
        F.col("timestamp").alias("_kafka_timestamp"),
        F.col("key").cast("string").alias("_key"),
        F.lit(batch_id).cast("long").alias("_batch_id"),
        F.lit(ingest_date).cast("date").alias("_ingest_date"),
        F.col("value").alias("_value"),
        F.col("_error"),
    )
    event_date = (
        F.when(F.col("_error").isNull(), local_date(event_time_field, zone))
        if event_time_field
        else F.lit(None)
    )
    return records.withColumn("_event_date", event_date.cast("date"))


def parsed_once(records: DataFrame, name: str) -> DataFrame:
    """`records` (of `kafka_records`) behind a plan boundary, to filter them on `_error`.
    Without it Spark pushes the filter below the projection that parses the JSON and derives
    `_error` there again, from a parse of its own for every field the reasons read: a sale
    event parsed 64 times, ten times the time. Spark never pushes a filter through `observe`:
    the boundary is an observation named `name` (its row count is not needed)."""
    return records.observe(Observation(name), F.count(F.lit(1)).alias("rows"))


def good_records(records: DataFrame, columns: list[SchemaColumn]) -> DataFrame:
    """The well-formed rows of `kafka_records`, as bronze rows (no raw text). `records` must be
    observed (`parsed_once`, or an `observe` of the job's own)."""
    return records.where(F.col("_error").isNull()).select(
        *[c.name for c in columns], *KAFKA_LINEAGE.fieldNames()
    )


def dead_letters(records: DataFrame) -> DataFrame:
    """The malformed rows of `kafka_records`, with raw text, raw bytes and the reason. `records`
    must be observed, as `good_records`'."""
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


def batch_stats(partitions: list[int]) -> list[Column]:
    """Aggregates of `kafka_records` (for `DataFrame.observe`, so the batch's write computes
    them: no pass of their own): `messages`, `dead_letters`, `other` (messages of a partition
    not in `partitions`) and, per partition p of `partitions`, `p<p>.start` (first offset),
    `p<p>.end` (the offset after the last: Kafka's convention), `p<p>.messages` and
    `p<p>.dead_letters`."""
    part, offset, error = F.col("_partition"), F.col("_offset"), F.col("_error")
    aggs = [
        F.count(F.lit(1)).alias("messages"),
        F.count(error).alias("dead_letters"),
        F.count(F.when(~part.isin(partitions), 1)).alias("other"),
    ]
    for p in partitions:
        on = part == F.lit(p)
        aggs += [
            F.min(F.when(on, offset)).alias(f"p{p}.start"),
            (F.max(F.when(on, offset)) + 1).alias(f"p{p}.end"),
            F.count(F.when(on, 1)).alias(f"p{p}.messages"),
            F.count(F.when(on, error)).alias(f"p{p}.dead_letters"),
        ]
    return aggs


def ranges_of(stats: dict, topic: str, partitions: list[int]) -> list[dict]:
    """The per-partition offset ranges (`offset_ranges`' rows) in `batch_stats`' values; only
    the partitions that had messages."""
    return [
        {
            "topic": topic,
            "partition": p,
            "start_offset": stats[f"p{p}.start"],
            "end_offset": stats[f"p{p}.end"],
            "messages": stats[f"p{p}.messages"],
            "dead_letters": stats[f"p{p}.dead_letters"],
        }
        for p in partitions
        if stats[f"p{p}.messages"]
    ]
