"""build_features: silver entities (+ windowed aggregates over other silver tables) -> the
Delta feature table, MERGEd on (entity key, feature_ts) so re-runs and backfills are idempotent.

`--date D` builds one day; `--start D1 --end D2` backfills a range in chunks of
`features.backfill_chunk_days`, each chunk one bounded read and one MERGE (nothing is
collected to the driver)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for
from lakeloop.spec import FeaturesSpec, Pipeline
from lakeloop.timezones import local_date
from lakeloop.transforms.features import (
    FEATURE_DATE,
    FEATURE_TS,
    enriched_events,
    entity_features,
    latest_per_key,
    require_columns,
    window_aggregate,
    with_aggregates,
)
from lakeloop.transforms.lookups import lookup_features

log = logging.getLogger(__name__)
JOB = "build_features"
DATE_COLUMN = "_ingest_date"
POSITION_COLUMN = "_source_position"


def _spec(pipeline: Pipeline) -> FeaturesSpec:
    if pipeline.spec.features is None:
        raise JobError(f"pipeline {pipeline.name} declares no `features`")
    return pipeline.spec.features


def _table(spark: SparkSession, pipeline: Pipeline, key: str) -> DataFrame:
    path = pipeline.table_path(key)
    if delta_io.version(spark, path) is None:
        raise JobError(f"{pipeline.spec.table(key)} does not exist at {path}; run validate first")
    return delta_io.read(spark, path)


def features_for(
    spark: SparkSession, pipeline: Pipeline, start: dt.date, end: dt.date
) -> DataFrame:
    """Feature rows for entities that arrived (`_ingest_date`) in [start, end]: reads, then
    pure transforms. `feature_date` is the entity's local date in the pipeline's zone.
    A spec that does not fit the tables raises SpecError here, before anything is written."""
    spec = _spec(pipeline)
    keys = pipeline.spec.entity_keys
    entities = _table(spark, pipeline, spec.source).where(
        F.col(DATE_COLUMN).between(F.lit(start), F.lit(end))
    )
    require_columns(
        entities,
        [*(("entity_key", k) for k in keys), ("features.timestamp", spec.timestamp)],
        pipeline.spec.table(spec.source),
    )
    # MERGE needs one row per (key, feature_ts): the latest ingested (then last in its file)
    order = [c for c in (DATE_COLUMN, POSITION_COLUMN) if c in entities.columns]
    entities = latest_per_key(entities, [*keys, spec.timestamp], order or [spec.timestamp])
    zone = pipeline.spec.timezone
    excluded = pipeline.spec.label_excluded_features
    feats = entity_features(entities, spec, keys, zone, excluded)
    if not spec.aggregates and not spec.lookups:
        return feats
    # the local days the batch's windows reach back from: an entity that arrived in the range
    # can be dated before it (a backlog listing), so the bounds come from the rows themselves
    days = feats.agg(
        F.min(FEATURE_DATE).alias("lo"),
        F.max(FEATURE_DATE).alias("hi"),
        F.min(FEATURE_TS).alias("first_ts"),
        F.max(FEATURE_TS).alias("last_ts"),
    ).first()
    first_day, last_day = days["lo"] or start, days["hi"] or end
    for lk in spec.lookups:
        where = f"features.lookups[{lk.name}]"
        rows = _table(spark, pipeline, lk.table)
        require_columns(rows, [(f"{where}.time", lk.time)], pipeline.spec.table(lk.table))
        if days["first_ts"] is not None:  # only rows that can be as of a batch row
            lo = days["first_ts"] - lk.tolerance_delta
            rows = rows.where(F.col(lk.time).between(F.lit(lo), F.lit(days["last_ts"])))
        feats = lookup_features(feats, rows, lk, FEATURE_TS, where)
    aggs = []
    for i, a in enumerate(spec.aggregates):
        where = f"features.aggregates[{i}]"
        lo = first_day - dt.timedelta(days=a.window_days)
        source = _table(spark, pipeline, a.source)
        require_columns(
            source, [(f"{where}.event_time", a.event_time)], pipeline.spec.table(a.source)
        )
        event_day = local_date(a.event_time, zone)
        events = source.where(event_day.between(F.lit(lo), F.lit(last_day)))
        enrich = _table(spark, pipeline, a.join.table) if a.join else None
        events = enriched_events(events, enrich, a.join, a.event_time, f"{where}.join")
        aggs.append(window_aggregate(feats, events, a, i, zone))
    return with_aggregates(feats, aggs, spec.aggregates) if aggs else feats


def merge_features(
    spark: SparkSession, pipeline: Pipeline, batch: DataFrame, run_id: str
) -> tuple[int, int]:
    """MERGE `batch` into the feature table; (the version committed, rows it inserted or
    updated): the rows from the MERGE's own result, the version from its commit (no
    `history()` job)."""
    spec = _spec(pipeline)
    path = pipeline.table_path(spec.table)
    if delta_io.version(spark, path) is None:
        batch.limit(0).write.format("delta").partitionBy(FEATURE_DATE).save(path)
    cond = " AND ".join(f"t.{c} = s.{c}" for c in [*pipeline.spec.entity_keys, FEATURE_TS])
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", run_id)
    try:
        m = (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(batch.alias("s"), cond)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
            .first()
        )
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
    merged = int(m["num_inserted_rows"]) + int(m["num_updated_rows"])
    return delta_io.version_written_by(spark, path, run_id), merged


def chunks(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    if end < start:
        raise JobError(f"--end {end} is before --start {start}")
    out, lo = [], start
    while lo <= end:
        hi = min(end, lo + dt.timedelta(days=days - 1))
        out.append((lo, hi))
        lo = hi + dt.timedelta(days=1)
    return out


def backfill(
    spark: SparkSession, pipeline: Pipeline, start: dt.date, end: dt.date
) -> runlog.RunRecord:
    spec = _spec(pipeline)
    with runlog.recording(spark, pipeline, JOB, start) as rec:
        rec.details["range"] = f"{start}..{end}"
        ranges = chunks(start, end, spec.backfill_chunk_days)
        rec.details["chunks"] = str(len(ranges))
        written = 0
        for lo, hi in ranges:
            batch = features_for(spark, pipeline, lo, hi)
            version, merged = merge_features(spark, pipeline, batch, rec.run_id)
            rec.add_version(pipeline.spec.table(spec.table), version)
            written += merged
        # rows inserted or updated: entities that arrived in the range, whatever their
        # feature_date (a backlog listing can be dated before it arrived)
        rec.output_counts[spec.table] = written
    return rec


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    return backfill(spark, pipeline, date, date)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--start" in argv or "--end" in argv:
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--start", type=dt.date.fromisoformat, required=True)
        p.add_argument("--end", type=dt.date.fromisoformat, required=True)
        rng, rest = p.parse_known_args(argv)
        return main_for(
            JOB,
            lambda s, pl, _d: backfill(s, pl, rng.start, rng.end),
            [*rest, "--date", rng.start.isoformat()],
        )
    return main_for(JOB, run, argv)
