"""ingest_files: the day's files (per the spec's globs) -> bronze Delta, idempotent per date.

Explicit schema; every record kept with its source file and position; malformed records kept
with their raw text and a reason. The bronze table is overwritten for `_ingest_date = date`
only (replaceWhere), so a re-run for the same date gives the same table content.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog, storage
from lakeloop.jobs.common import JobError, main_for, observed
from lakeloop.schemas import STATS_COLUMNS, read_struct
from lakeloop.spec import FileSource, Pipeline
from lakeloop.transforms.bronze import CORRUPT, csv_listing_records, json_listing_records

log = logging.getLogger(__name__)
JOB = "ingest_files"
BRONZE_PROPERTIES = delta_io.stats_properties(STATS_COLUMNS["bronze_files"])


@contextmanager
def one_partition_per_file(spark: SparkSession) -> Iterator[None]:
    """Never split or pack files, so a row's index in its partition is its position in its
    file (records keep their file position without a shuffle)."""
    keys = {
        "spark.sql.files.maxPartitionBytes": str(1 << 40),
        "spark.sql.files.openCostInBytes": str(1 << 40),
    }
    old = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            spark.conf.unset(k) if v is None else spark.conf.set(k, v)


def matching_files(
    spark: SparkSession, pipeline: Pipeline, source: FileSource, date: dt.date
) -> list[str]:
    """The day's files of a source, listed through the session's Hadoop FileSystem (local,
    hdfs://, s3a:// ... alike), as fully qualified URIs."""
    pattern = pipeline.file_glob(source, date)
    files = storage.glob_files(spark, pattern)
    if not files:
        raise JobError(
            f"source {source.name}: no files match {pattern} for {date}; "
            "nothing was written (check the landing folder or the spec's glob)"
        )
    return files


def read_source(
    spark: SparkSession, source: FileSource, files: list[str], date: dt.date
) -> DataFrame:
    if source.format == "csv":
        opts = {"header": True, **source.options}
        raw = (
            spark.read.format("csv")
            .schema(read_struct(source.columns).add(CORRUPT, "string"))
            .options(
                **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in opts.items()}
            )
            .option("multiLine", "true")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("enforceSchema", "false")  # a header that differs from the schema fails
            .load(files)
        )
        return csv_listing_records(_with_position(raw), source.columns, date)
    lines = spark.read.format("text").load(files)
    return json_listing_records(_with_position(lines), source.columns, date)


def _with_position(df: DataFrame) -> DataFrame:
    return df.select(
        "*",
        F.col("_metadata.file_path").alias("_source_file"),
        F.monotonically_increasing_id().alias("_row_id"),
    )


_HEADER_DETAIL = ("Expected:", "CSV file:", "Header:", "Schema:")


def _bare(uri: str) -> str:
    """A file's location without a `file:` scheme (Spark and Hadoop spell it `file:/p` or
    `file:///p`)."""
    return "/" + uri.removeprefix("file:").lstrip("/") if uri.startswith("file:") else uri


def header_error(
    table_key: str, sources: list[FileSource], files: dict[str, list[str]], spark_error: str
) -> str:
    """The JobError text for a CSV header Spark refused (enforceSchema=false): Spark's own
    detail (`Expected: <column> but found: <column>`, the file, header and schema) and the
    spec key to fix."""
    detail = {}
    for line in spark_error.splitlines():
        for key in _HEADER_DETAIL:
            if line.strip().startswith(key) and key not in detail:
                detail[key] = line.strip()[len(key) :].strip()[:300]
    where = detail.get("CSV file:", "")
    source = next(
        (s.name for s in sources if any(_bare(where) == _bare(f) for f in files[s.name])),
        None,
    )
    key = (
        f"sources.files[{source}].schema"
        if source
        else " or ".join(f"sources.files[{s.name}].schema" for s in sources if s.format == "csv")
    )
    spark_line = f"Expected: {detail['Expected:']}" if "Expected:" in detail else "see the header"
    return (
        f"{table_key}: CSV header differs from the spec's schema: {spark_line} (file "
        f"{where or '?'}; header: {detail.get('Header:', '?')}; schema: "
        f"{detail.get('Schema:', '?')}). Nothing was written to {table_key} for this date: make "
        f"the file's header name the columns of {key} in the same order, or fix the schema"
    )


def format_counts(formats: list[str]) -> list[Column]:
    """Records and malformed records per format of bronze rows."""
    aggs = []
    for fmt in formats:
        is_fmt = F.col("_source_format") == F.lit(fmt)
        aggs += [
            F.count(F.when(is_fmt, 1)).alias(f"{fmt}.records"),
            F.count(F.when(is_fmt & F.col("_error").isNotNull(), 1)).alias(f"{fmt}.malformed"),
        ]
    return aggs


def observed_counts(bronze: DataFrame, formats: list[str]) -> tuple[DataFrame, Observation]:
    """Count records and malformed records per format while the write runs (no second pass)."""
    obs = Observation("bronze_counts")
    return bronze.observe(obs, *format_counts(formats)), obs


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    by_table: dict[str, list[FileSource]] = defaultdict(list)
    for s in pipeline.spec.sources.files:
        by_table[s.table].append(s)
    if not by_table:
        raise JobError(f"pipeline {pipeline.name} declares no file sources")
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        for table_key, sources in by_table.items():
            path = pipeline.table_path(table_key)
            with one_partition_per_file(spark):
                files = {s.name: matching_files(spark, pipeline, s, date) for s in sources}
                frames = [read_source(spark, s, files[s.name], date) for s in sources]
                bronze = frames[0]
                for f in frames[1:]:
                    bronze = bronze.unionByName(f)
                formats = sorted({s.format for s in sources})
                bronze, counts = observed_counts(bronze, formats)
                try:
                    written = delta_io.replace_partition(
                        bronze,
                        path,
                        "_ingest_date",
                        date.isoformat(),
                        rec.run_id,
                        partition_by="_ingest_date",
                        properties=BRONZE_PROPERTIES,
                    )
                except AnalysisException as e:
                    if "header" in str(e).lower() or "CSV" in str(e):
                        raise JobError(f"{table_key}: {str(e).splitlines()[0]}") from e
                    raise
                except Exception as e:  # the CSV header check surfaces as a task failure
                    msg = str(e)
                    if "does not conform to the schema" in msg or "CSV header" in msg:
                        raise JobError(header_error(table_key, sources, files, msg)) from None
                    raise
            rec.add_version(pipeline.spec.table(table_key), written)
            got = observed(counts) or (
                delta_io.read(spark, path)
                .where(F.col("_ingest_date") == F.lit(date))
                .agg(*format_counts(formats))
                .first()
                .asDict()
            )
            for fmt in formats:
                rec.input_counts[f"{table_key}.{fmt}.records"] = got[f"{fmt}.records"]
                rec.input_counts[f"{table_key}.{fmt}.files"] = sum(
                    len(files[s.name]) for s in sources if s.format == fmt
                )
                rec.output_counts[f"{table_key}.{fmt}.malformed"] = got[f"{fmt}.malformed"]
                rec.output_counts[table_key] = (
                    rec.output_counts.get(table_key, 0) + got[f"{fmt}.records"]
                )
    return rec


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv)
