"""build_training_set: label rows joined point-in-time with the feature table.

The label rows are a separate event table (silver sales) or the entity's own table (the target
on the entity row); the label is a column or a SQL expression over the label source's columns,
and a null label fails the run or is left out and counted (`label.on_null`). Each label gets
its entity's latest feature row as of the label's time (never after), within
`label.lookback_days`; the feature table is pruned on its `feature_date` partitions to the
labels' date range minus the look-back. `--date D` (re)writes the training set of all labels
dated on or before D, as one overwrite: idempotent for the same D and the same inputs."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.config import SpecError
from lakeloop.jobs.common import JobError, main_for
from lakeloop.spec import Pipeline, PipelineSpec
from lakeloop.timezones import local_date
from lakeloop.transforms.features import FEATURE_DATE, FEATURE_TS, resolved_sql
from lakeloop.transforms.training import HAS_FEATURES, point_in_time_training_set

log = logging.getLogger(__name__)
JOB = "build_training_set"


def label_events(silver: DataFrame, spec: PipelineSpec, date: dt.date) -> DataFrame:
    """The label rows whose local date (label time, in the pipeline's zone) is on or before
    `date`, and those without a label time (their label is null): the entity key, the label id, the label time (`label_ts` when the label lives on
    the entity's table) and the label (`label.column` or `label.expr`) under its name. A
    column the spec names that the label source lacks, or an expression Spark cannot resolve,
    is a SpecError naming the spec key."""
    label = spec.label
    wanted = [
        *(("label.id", c) for c in spec.label_ids),
        *(("entity_key", c) for c in spec.entity_keys),
        ("label.event_time", spec.label_time_source),
        *([("label.column", label.column)] if label.column else []),
    ]
    unknown = [f"{k} ({c})" for k, c in wanted if c not in silver.columns]
    if unknown:
        raise SpecError(
            f"{', '.join(unknown)}: no such column in the label source (it has: "
            f"{', '.join(c for c in silver.columns if not c.startswith('_'))})"
        )
    time = spec.label_time_source
    if label.expr:  # resolved first: a SpecError naming label.expr
        resolved_sql("label.expr", label.expr, silver.select)
    value = F.col(label.column) if label.column else F.expr(label.expr)
    ids = list(dict.fromkeys([*spec.label_ids, *spec.entity_keys]))  # an id may be the key
    # a row without a label time (e.g. not delivered yet) has no label yet: it counts as a
    # null label (label.on_null), never silently out
    dated = F.col(time).isNull() | (local_date(time, spec.timezone) <= F.lit(date))
    return silver.where(dated).select(
        *ids,
        F.col(time).alias(spec.label_time_column),
        F.when(F.col(time).isNotNull(), value).alias(label.label_name),
    )


@dataclass(frozen=True)
class TrainingSet:
    rows: DataFrame
    null_labels_dropped: int


def training_set(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> TrainingSet:
    spec = pipeline.spec
    if spec.label is None or spec.features is None:
        raise JobError(f"pipeline {pipeline.name} needs `label` and `features` for a training set")
    paths = {k: pipeline.table_path(k) for k in (spec.label.source, spec.features.table)}
    for key, path in paths.items():
        if delta_io.version(spark, path) is None:
            raise JobError(
                f"{spec.table(key)} does not exist at {path}; run validate and build_features first"
            )
    zone, lab = spec.timezone, spec.label
    name, time = lab.label_name, spec.label_time_column
    labels = label_events(delta_io.read(spark, paths[lab.source]), spec, date)
    present = F.col(name).isNotNull()
    ids = spec.label_ids
    bounds = labels.agg(
        local_date(F.min(time), zone).alias("lo"),
        local_date(F.max(time), zone).alias("hi"),
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(present, 1)).alias("labelled"),
        F.count_distinct(F.when(present, F.struct(*ids))).alias("ids"),
    ).first()
    source = spec.table(lab.source)
    what = f"label.{'expr' if lab.expr else 'column'} ({lab.expr or lab.column})"
    if bounds["lo"] is None:
        raise JobError(f"no label events in {source} on or before {date}")
    nulls = bounds["rows"] - bounds["labelled"]
    if nulls and lab.on_null == "error":
        examples = labels.where(~present).select(*ids).limit(3).collect()
        shown = "; ".join(", ".join(f"{k}={r[k]}" for k in ids) for r in examples)
        raise JobError(
            f"{source}: {nulls} of {bounds['rows']} label rows on or before {date} have a null "
            f"{what} (e.g. {shown}); set `label.on_null: drop` to leave them out (counted in "
            "the run log and the model report) or fix them upstream; nothing was written"
        )
    if bounds["labelled"] == 0:
        raise JobError(
            f"{source}: all {bounds['rows']} label rows on or before {date} have a null {what}"
        )
    if bounds["labelled"] != bounds["ids"]:
        raise JobError(
            f"{source} holds {bounds['labelled']} label rows on or before {date} but only "
            f"{bounds['ids']} distinct label ids ({', '.join(ids)}): a training set has one "
            f"label per id. De-duplicate the label source with a `cleaning.dedup` on "
            f"[{', '.join(ids)}] in its expectations entry and re-run validate; nothing was "
            "written"
        )
    if nulls:
        log.warning("%d label rows with a null %s left out (label.on_null: drop)", nulls, what)
        labels = labels.where(present)
    features = delta_io.read(spark, paths[spec.features.table])
    try:
        rows = point_in_time_training_set(
            labels,
            features,
            spec.entity_keys,
            time,
            FEATURE_TS,
            lab.lookback_days,
            FEATURE_DATE,
            (bounds["lo"], bounds["hi"]),
        )
    except ValueError as e:  # a column on both sides: the spec check at load catches most
        raise SpecError(f"pipeline {pipeline.name}: label and features: {e}") from None
    return TrainingSet(rows, nulls)


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        built = training_set(spark, pipeline, date)
        df = built.rows
        key = pipeline.spec.label.table
        rec.output_counts[f"{key}.null_labels_dropped"] = built.null_labels_dropped
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
