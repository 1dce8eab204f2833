"""build_training_set: label events (silver sales) joined point-in-time with the feature table.

Each label gets its entity's latest feature row as of the label's time (never after), within
`label.lookback_days`; the feature table is pruned on its `feature_date` partitions to the
labels' date range minus the look-back. `--date D` (re)writes the training set of all labels
dated on or before D, as one overwrite: idempotent for the same D and the same inputs."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.config import SpecError
from lakeloop.jobs.common import JobError, main_for
from lakeloop.spec import LabelSpec, Pipeline
from lakeloop.timezones import local_date
from lakeloop.transforms.features import FEATURE_DATE, FEATURE_TS
from lakeloop.transforms.training import HAS_FEATURES, point_in_time_training_set

log = logging.getLogger(__name__)
JOB = "build_training_set"


def label_events(
    silver: DataFrame, label: LabelSpec, entity_key: str, date: dt.date, zone: str = "UTC"
) -> DataFrame:
    """The label columns of the label events whose local date (event time, in `zone`) is on or
    before `date`. The label id may be the entity key itself (one outcome per entity). A column
    the spec names that the label table lacks is a SpecError naming the spec key."""
    wanted = {
        "label.id": label.id,
        "entity_key": entity_key,
        "label.event_time": label.event_time,
        "label.column": label.column,
    }
    unknown = [f"{k} ({c})" for k, c in wanted.items() if c not in silver.columns]
    if unknown:
        raise SpecError(
            f"{', '.join(unknown)}: no such column in the label source (it has: "
            f"{', '.join(c for c in silver.columns if not c.startswith('_'))})"
        )
    columns = list(dict.fromkeys(wanted.values()))  # label.id may be the entity key
    return silver.where(local_date(label.event_time, zone) <= F.lit(date)).select(*columns)


def training_set(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> DataFrame:
    spec = pipeline.spec
    if spec.label is None or spec.features is None:
        raise JobError(f"pipeline {pipeline.name} needs `label` and `features` for a training set")
    paths = {k: pipeline.table_path(k) for k in (spec.label.source, spec.features.table)}
    for key, path in paths.items():
        if delta_io.version(spark, path) is None:
            raise JobError(
                f"{spec.table(key)} does not exist at {path}; run validate and build_features first"
            )
    zone = spec.timezone
    labels = label_events(
        delta_io.read(spark, paths[spec.label.source]), spec.label, spec.entity_key, date, zone
    )
    bounds = labels.agg(
        local_date(F.min(spec.label.event_time), zone).alias("lo"),
        local_date(F.max(spec.label.event_time), zone).alias("hi"),
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(spec.label.id).alias("ids"),
    ).first()
    source = spec.table(spec.label.source)
    if bounds["lo"] is None:
        raise JobError(f"no label events in {source} on or before {date}")
    if bounds["rows"] != bounds["ids"]:
        raise JobError(
            f"{source} holds {bounds['rows']} label rows on or before {date} but only "
            f"{bounds['ids']} distinct label ids ({spec.label.id}): a training set has one label "
            f"per id. De-duplicate the label source with a `cleaning.dedup` on "
            f"[{spec.label.id}] in its expectations entry and re-run validate; nothing was written"
        )
    features = delta_io.read(spark, paths[spec.features.table])
    try:
        return point_in_time_training_set(
            labels,
            features,
            spec.entity_key,
            spec.label.event_time,
            FEATURE_TS,
            spec.label.lookback_days,
            FEATURE_DATE,
            (bounds["lo"], bounds["hi"]),
        )
    except ValueError as e:  # a column on both sides: the spec check at load catches most
        raise SpecError(f"pipeline {pipeline.name}: label and features: {e}") from None


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        df = training_set(spark, pipeline, date)
        key = pipeline.spec.label.table
        path = pipeline.table_path(key)
        (
            df.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .option("userMetadata", rec.run_id)
            .save(path)
        )
        rec.add_version(pipeline.spec.table(key), delta_io.version(spark, path))
        written = delta_io.read(spark, path)
        r = written.agg(
            F.count(F.lit(1)).alias("n"), F.count(F.when(F.col(HAS_FEATURES), 1)).alias("with")
        ).first()
        rec.output_counts[key] = r["n"]
        rec.output_counts[f"{key}.with_features"] = r["with"]
    return rec


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv)
