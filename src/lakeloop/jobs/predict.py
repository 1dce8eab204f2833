"""predict: score the day's entities (the feature rows dated on the run date) with the registry's
`champion` and write them to the predictions table, partitioned by prediction date.

The write is `replaceWhere prediction_date = D`: a re-run or a backfill replaces exactly that
date and nothing else. Every row carries the model's name, version and MLflow run id; when a
`challenger` exists its prediction is written beside the champion's (shadow scoring). Rows are
deterministic for the same inputs and models, so a re-run gives the same checksum (in the run
log). No champion, or no feature rows for the date, is an error that says what to run."""

from __future__ import annotations

import datetime as dt
import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for
from lakeloop.ml import tracking
from lakeloop.spec import Pipeline
from lakeloop.transforms.features import FEATURE_DATE, FEATURE_TS
from lakeloop.transforms.modeling import ERROR, PREDICTION_DATE, ScoringModel, scored_entities

log = logging.getLogger(__name__)
JOB = "predict"


def _scoring_model(ref: tracking.ModelRef) -> ScoringModel:
    return ScoringModel(tracking.load(ref), ref.name, ref.version, ref.run_id)


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    spec = pipeline.spec
    if spec.model is None or spec.features is None:
        raise JobError(f"pipeline {pipeline.name} needs `model` and `features` to predict")
    m = spec.model
    with runlog.recording(spark, pipeline, JOB, date) as rec:
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
        features_path = pipeline.table_path(spec.features.table)
        if delta_io.version(spark, features_path) is None:
            raise JobError(
                f"{spec.table(spec.features.table)} does not exist at {features_path}; "
                "run build_features first"
            )
        entities = delta_io.read(spark, features_path).where(F.col(FEATURE_DATE) == F.lit(date))
        if entities.isEmpty():
            raise JobError(
                f"{spec.table(spec.features.table)} has no rows for {date}: run build_features "
                f"for {date} first; the predictions of {date} were left as they were"
            )
        scored = scored_entities(
            entities,
            _scoring_model(champion),
            _scoring_model(challenger) if challenger else None,
            m,
            spec.entity_key,
            FEATURE_TS,
            date,
        )
        key = m.predictions
        path = pipeline.table_path(key)
        delta_io.replace_partition(
            scored,
            path,
            PREDICTION_DATE,
            date.isoformat(),
            rec.run_id,
            partition_by=PREDICTION_DATE,
        )
        rec.add_version(spec.table(key), delta_io.version(spark, path))
        written = delta_io.read(spark, path).where(F.col(PREDICTION_DATE) == F.lit(date))
        r = written.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count(ERROR).alias("errors"),
            delta_io.checksum_column(written).alias("checksum"),
        ).first()
        rows, errors, checksum = r["rows"], r["errors"], r["checksum"]
        rec.output_counts[key] = rows
        rec.output_counts[f"{key}.not_scored"] = errors
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
