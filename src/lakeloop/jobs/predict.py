"""predict: score the day's entities (the feature rows dated on the run date, a local date in
the pipeline's time zone) with the registry's `champion` and write them to the predictions
table, partitioned by prediction date. Every entity of the day is scored: the entities of D in
the entity (silver) table must all have a feature row of D (else an error says which ingest
dates build_features has not run for), and the predictions written must number the feature
rows of D; the run log records entities, feature rows and predictions.

The write is `replaceWhere prediction_date = D`: a re-run or a backfill replaces exactly that
date and nothing else. Every row carries the model's name, version and MLflow run id; when a
`challenger` exists its prediction is written beside the champion's (shadow scoring). Rows are
deterministic for the same inputs and models, so a re-run gives the same checksum (in the run
log). No champion, or no feature rows for the date, is an error that says what to run."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for, observed
from lakeloop.ml import tracking
from lakeloop.schemas import STATS_COLUMNS
from lakeloop.spec import Pipeline
from lakeloop.timezones import day_bounds, local_date
from lakeloop.transforms.features import FEATURE_DATE, FEATURE_TS
from lakeloop.transforms.modeling import ERROR, PREDICTION_DATE, ScoringModel, scored_entities

log = logging.getLogger(__name__)
JOB = "predict"


@dataclass(frozen=True)
class DayEntities:
    entities: int  # distinct (entity key, timestamp) of the entity table dated D (local)
    feature_rows: int  # feature rows with feature_date D
    without_features: int  # entities of D that have no feature row
    missing_ingest_dates: str  # the `_ingest_date`s of those, e.g. "2026-01-02, 2026-01-03"


def entities_of_day(
    spark: SparkSession, pipeline: Pipeline, features: DataFrame, date: dt.date
) -> DayEntities:
    """The entities of `date` in the pipeline's zone, per the entity (silver) table: those
    whose timestamp's local date is `date`, and how many of them have no row in `features`
    (the feature rows of the date). A feature row of an entity version that silver no longer
    holds (a relisting superseded it) is still scored: it is an entity of that day."""
    spec = pipeline.spec
    f = spec.features
    keys, ts = spec.entity_keys, f.timestamp
    lo, hi = day_bounds(date, spec.timezone)
    path = pipeline.table_path(f.source)
    if delta_io.version(spark, path) is None:
        raise JobError(
            f"{spec.table(f.source)} (features.source) does not exist at {path}: the entities "
            "of the day cannot be counted; run validate and build_features first"
        )
    silver = delta_io.read(spark, path)
    # the instant bounds prune files by their min/max stats; the local date is exact
    of_day = (
        silver.where(F.col(ts).between(F.lit(lo), F.lit(hi)))
        .where(local_date(ts, spec.timezone) == F.lit(date))
        .groupBy(*keys, ts)
        .agg(F.min("_ingest_date").alias("_ingest_date"))
    )
    # one aggregate answers all three counts: (keys, feature_ts) is the feature table's MERGE
    # key, so each entity meets at most one feature row
    have = features.select(*keys, F.col(FEATURE_TS).alias(ts), F.lit(True).alias("_feature"))
    joined = of_day.withColumn("_entity", F.lit(True)).join(have, [*keys, ts], "full_outer")
    missing = F.col("_entity") & F.col("_feature").isNull()
    r = joined.agg(
        F.count("_entity").alias("entities"),
        F.count("_feature").alias("feature_rows"),
        F.count(F.when(missing, 1)).alias("missing"),
        F.array_join(
            F.array_sort(F.collect_set(F.when(missing, F.col("_ingest_date").cast("string")))),
            ", ",
        ).alias("dates"),
    ).first()
    return DayEntities(r["entities"], r["feature_rows"], r["missing"], r["dates"] or "")


def _counts(df: DataFrame) -> list[Column]:
    return [
        F.count(F.lit(1)).alias("rows"),
        F.count(ERROR).alias("errors"),
        delta_io.checksum_column(df).alias("checksum"),
    ]


def observed_predictions(scored: DataFrame) -> tuple[DataFrame, Observation]:
    """`scored` counting, while it is written, its rows, its rows not scored and the checksum
    of its rows (`delta_io.checksum_column`): no second pass over the written partition."""
    obs = Observation("predictions_written")
    return scored.observe(obs, *_counts(scored)), obs


def written_counts(written: DataFrame) -> dict:
    """`observed_predictions`' counts of the written partition read back (when the write's
    observed metrics did not come)."""
    return written.agg(*_counts(written)).first().asDict()


def _scoring_model(ref: tracking.ModelRef, dfs_tmpdir: str) -> ScoringModel:
    model = tracking.load(ref, dfs_tmpdir)
    return ScoringModel(model, ref.name, ref.version, ref.run_id)


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    spec = pipeline.spec
    if spec.model is None or spec.features is None:
        raise JobError(f"pipeline {pipeline.name} needs `model` and `features` to predict")
    m = spec.model
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        features_path = pipeline.table_path(spec.features.table)
        if delta_io.version(spark, features_path) is None:
            raise JobError(
                f"{spec.table(spec.features.table)} does not exist at {features_path}; "
                "run build_features first"
            )
        entities = delta_io.read(spark, features_path).where(F.col(FEATURE_DATE) == F.lit(date))
        day = entities_of_day(spark, pipeline, entities, date)
        rec.input_counts["entities"] = day.entities
        rec.input_counts["feature_rows"] = day.feature_rows
        if day.feature_rows == 0:
            raise JobError(
                f"{spec.table(spec.features.table)} has no rows for {date} "
                f"({spec.timezone}): run build_features for {date} first; the predictions "
                f"of {date} were left as they were"
            )
        if day.without_features:
            raise JobError(
                f"{day.without_features} of the {day.entities} entities of {date} "
                f"({spec.timezone}) in {spec.table(spec.features.source)} have no feature "
                f"row (they arrived on {day.missing_ingest_dates}): run build_features for "
                f"those dates, then predict again; the predictions of {date} were left as "
                "they were"
            )
        client = tracking.configure(pipeline.cfg)
        champion = tracking.by_alias(client, m.name, tracking.CHAMPION)
        if champion is None:
            n = tracking.version_count(client, m.name)
            raise JobError(
                f"model {m.name} has no `{tracking.CHAMPION}` in the registry at "
                f"{tracking.resolve_uri(pipeline.cfg, pipeline.cfg.mlflow.tracking_uri)} "
                f"({n} version(s) registered, none promoted): run `lakeloop run train` until a "
                "model passes the spec's promotion thresholds; nothing was written"
            )
        challenger = tracking.by_alias(client, m.name, tracking.CHALLENGER)
        if challenger is not None and challenger.version == champion.version:
            challenger = None
        tmp = tracking.dfs_tmpdir(spark, pipeline)
        scored = scored_entities(
            entities,
            _scoring_model(champion, tmp),
            _scoring_model(challenger, tmp) if challenger else None,
            m,
            spec.entity_keys,
            FEATURE_TS,
            date,
        )
        key = m.predictions
        path = pipeline.table_path(key)
        counting, counted = observed_predictions(scored)
        version = delta_io.replace_partition(
            counting,
            path,
            PREDICTION_DATE,
            date.isoformat(),
            rec.run_id,
            partition_by=PREDICTION_DATE,
            properties=delta_io.stats_properties(STATS_COLUMNS["predictions"]),
        )
        rec.add_version(spec.table(key), version)
        r = observed(counted) or written_counts(
            delta_io.read(spark, path).where(F.col(PREDICTION_DATE) == F.lit(date))
        )
        rows, errors, checksum = r["rows"], r["errors"], r["checksum"]
        rec.output_counts[key] = rows
        rec.output_counts[f"{key}.not_scored"] = errors
        if rows != day.feature_rows:  # never expected; loud if it ever happens
            raise JobError(
                f"{spec.table(key)} holds {rows} predictions for {date} but {day.feature_rows} "
                f"feature rows of {date} were scored (version {rec.delta_versions})"
            )
        rec.details.update(
            model=m.name,
            champion_version=str(champion.version),
            champion_run_id=champion.run_id,
            challenger_version=str(challenger.version) if challenger else "",
            checksum=checksum,
            table=spec.table(key),
            path=path,
        )
        if errors:
            log.warning("%d of %d entities not scored (missing features; see _error)", errors, rows)
    return rec


def report(rec: runlog.RunRecord) -> None:
    d = rec.details
    shadow = f", challenger v{d['challenger_version']} in shadow" if d["challenger_version"] else ""
    rows = sum(v for k, v in rec.output_counts.items() if "." not in k)
    sys.stdout.write(
        f"{rows} predictions for {rec.run_date} by {d['model']} v{d['champion_version']}"
        f"{shadow} -> {d['table']} ({d['path']}), checksum {d['checksum']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
