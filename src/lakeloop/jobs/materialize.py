"""materialize: the latest feature row per entity key as of the run date D, from the Delta
feature table to the online store (config `serving.online_store`), where `serve` reads it.

Of the feature rows dated on or before D (`feature_date`, a local date in the pipeline's time
zone) each entity key gets its latest one (see `latest_rows` for the order and its tie-break).
Spark writes them partition by partition, each partition one SQLite transaction of upserts
(lakeloop.serving.online_store); an upsert never replaces a stored row by an older one
(timestamp, then date), so a re-run of D gives the same store and materializing an older date
after a newer one changes nothing. Every column of the feature table is stored but the internal
ones (names starting with `_`). The run log records the feature rows read, the entities and the
rows written.

A spec without `serving:`, a missing feature table or no feature row dated on or before D is an
error that says what to do, and the store is left as it was."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import sys
from collections.abc import Iterator
from functools import partial

from pyspark.sql import DataFrame, Row, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for
from lakeloop.serving.online_store import OnlineStoreError, SqliteOnlineStore, open_store
from lakeloop.spec import Pipeline
from lakeloop.transforms.features import FEATURE_DATE, FEATURE_TS

log = logging.getLogger(__name__)
JOB = "materialize"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COMPLEX = (T.ArrayType, T.MapType, T.StructType)


def stored_columns(df: DataFrame) -> list[str]:
    """The columns the online store keeps: all but the internal ones (`_...`)."""
    return [c for c in df.columns if not c.startswith("_")]


def latest_rows(features: DataFrame, keys: list[str], date: dt.date) -> DataFrame:
    """One row per entity key (the stored columns only): of the rows with feature_date <=
    `date`, the latest by feature_ts, then feature_date; rows still tied are ordered by the
    other stored columns in name order, each greatest first and a null below any value (array,
    map and struct columns by their JSON text). That is a total order on what is stored, so the
    row picked does not depend on the partitioning or on file order (rows equal in every stored
    column are the same stored row)."""
    cols = stored_columns(features)
    kinds = {f.name: f.dataType for f in features.schema.fields}
    rest = sorted(c for c in cols if c not in {*keys, FEATURE_TS, FEATURE_DATE})
    tie = [F.to_json(c) if isinstance(kinds[c], _COMPLEX) else F.col(c) for c in rest]
    order = [F.col(FEATURE_TS), F.col(FEATURE_DATE), *tie]
    w = Window.partitionBy(*keys).orderBy(*[c.desc_nulls_last() for c in order])
    return (
        features.where(F.col(FEATURE_DATE) <= F.lit(date))
        .select(*cols)
        .withColumn("_rn", F.row_number().over(w))
        .where(F.col("_rn") == 1)
        .drop("_rn")
    )


def with_epoch_micros(df: DataFrame) -> tuple[DataFrame, list[str]]:
    """`df` with its (zoned) timestamp columns as microseconds since the epoch, and their
    names: a timestamp collected as such becomes a naive datetime in the Python worker's local
    zone; the number is the instant itself."""
    ts = [f.name for f in df.schema.fields if isinstance(f.dataType, T.TimestampType)]
    return df.withColumns({c: F.unix_micros(c) for c in ts}), ts


def _store_row(row: Row, ts_columns: list[str]) -> dict:
    d = row.asDict(recursive=True)
    for c in ts_columns:
        if d[c] is not None:
            d[c] = _EPOCH + dt.timedelta(microseconds=d[c])
    return d


def write_partition(
    store_path: str, pipeline: str, keys: list[str], ts_columns: list[str], rows: Iterator[Row]
) -> Iterator[tuple[int, int]]:
    """Upsert one partition's rows in one transaction (runs on an executor); yields (rows in
    the partition, rows inserted or replaced)."""
    first = next(rows, None)
    if first is None:
        return
    seen = 0

    def stream() -> Iterator[dict]:
        nonlocal seen
        for r in itertools.chain((first,), rows):
            seen += 1
            yield _store_row(r, ts_columns)

    with SqliteOnlineStore(store_path) as store:
        written = store.write(pipeline, keys, stream(), FEATURE_TS, FEATURE_DATE)
    yield seen, written


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    spec = pipeline.spec
    if spec.serving is None or spec.features is None:
        raise JobError(
            f"pipeline {pipeline.name} has no `serving:` section: add one (`serving: {{}}` "
            "takes the defaults) to its spec to materialize its features to the online store"
        )
    keys = spec.entity_keys
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        table, path = spec.table(spec.features.table), pipeline.table_path(spec.features.table)
        version = delta_io.version(spark, path)
        if version is None:
            raise JobError(f"{table} does not exist at {path}; run build_features first")
        features = delta_io.read(spark, path)
        read = features.where(F.col(FEATURE_DATE) <= F.lit(date)).count()
        rec.input_counts["feature_rows"] = read
        if read == 0:
            raise JobError(
                f"{table} (version {version}) has no rows dated on or before {date} "
                f"({spec.timezone}): run build_features for {date} first; the online store was "
                "left as it was"
            )
        try:
            with open_store(pipeline.cfg) as store:  # created, or found unusable, on the driver
                store_path = str(store.path)
        except OnlineStoreError as e:
            raise JobError(str(e)) from None
        latest, ts_columns = with_epoch_micros(latest_rows(features, keys, date))
        write = partial(write_partition, store_path, pipeline.name, keys, ts_columns)
        done = latest.rdd.mapPartitions(write).collect()
        entities, written = sum(n for n, _ in done), sum(w for _, w in done)
        with SqliteOnlineStore(store_path) as store:
            stored = store.count(pipeline.name)
        rec.input_counts["entities"] = entities
        rec.output_counts["online_store"] = written
        rec.output_counts["online_store.kept_newer"] = entities - written
        rec.output_counts["online_store.entities"] = stored
        rec.details.update(
            table=table,
            path=path,
            features_version=str(version),
            store=store_path,
            partitions=str(len(done)),
        )
    return rec


def report(rec: runlog.RunRecord) -> None:
    d, i, o = rec.details, rec.input_counts, rec.output_counts
    sys.stdout.write(
        f"{o['online_store']} of {i['entities']} entities as of {rec.run_date} written to the "
        f"online store {d['store']} ({o['online_store.kept_newer']} kept a newer row; "
        f"{i['feature_rows']} feature rows read from {d['table']} v{d['features_version']}; "
        f"{o['online_store.entities']} entities stored)\n"
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
