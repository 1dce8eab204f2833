"""monitor: is the data still healthy, does the model still work, should it be retrained?

For the run date D (a local date in the pipeline's zone) and the registry's champion:
- drift: the day's scored entities (the feature rows of D, which predict scored) against the
  champion's reference profile (its training set at the logged Delta version, profiled at
  training time): PSI over the reference's decile buckets, KS D and normalised Wasserstein for
  numeric features, PSI + Jensen-Shannon + chi-square for categorical ones, and prediction drift
  (the day's champion scores vs its test-window scores);
- quality: the predictions of the last `monitoring.quality_days` dates joined to the labels
  matured by D, per model version, role (champion / challenger shadow) and prediction date,
  recording the label table's Delta version and the count of matured labels;
- the data-quality trend: pass rate, quarantine count and top reasons per day from the run log;
- the retrain policy's decision (lakeloop.monitoring.policy), printed.
Each goes to its `metrics_*` table with `replaceWhere run_date = D`: a re-run for D replaces
exactly D's rows (identical for the same inputs), with the run id and model version on every
row. All statistics are Spark aggregations; only histograms and counts reach the driver."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for
from lakeloop.ml import tracking
from lakeloop.monitoring import drift, online, policy, quality, reference, trend
from lakeloop.monitoring.tables import (
    DATA_QUALITY,
    DATA_QUALITY_SCHEMA,
    DECISIONS,
    DECISIONS_SCHEMA,
    DRIFT,
    DRIFT_SCHEMA,
    ONLINE,
    ONLINE_SCHEMA,
    QUALITY,
    QUALITY_SCHEMA,
    RUN_DATE,
)
from lakeloop.spec import Pipeline
from lakeloop.timezones import local_date
from lakeloop.transforms.features import FEATURE_DATE
from lakeloop.transforms.modeling import PREDICTION_DATE

log = logging.getLogger(__name__)
JOB = "monitor"


def _require(spark: SparkSession, pipeline: Pipeline, key: str, what: str) -> DataFrame:
    path = pipeline.table_path(key)
    if delta_io.version(spark, path) is None:
        raise JobError(f"{pipeline.spec.table(key)} does not exist at {path}: {what}")
    return delta_io.read(spark, path)


def drift_rows(
    ref: reference.Reference,
    features: dict[str, drift.FeatureProfile],
    prediction: drift.FeatureProfile,
) -> list[drift.Drift]:
    """The day's drift per watched feature and for the prediction (in that order)."""
    out = [drift.compare(ref.features[f], cur) for f, cur in features.items()]
    out.append(drift.compare(ref.prediction, prediction))
    return out


def _drift_table_rows(results: list[drift.Drift], head: tuple, threshold: float) -> list[tuple]:
    """DRIFT_SCHEMA rows of `drift_rows` (its last result is the prediction's)."""
    kinds = [d.kind for d in results[:-1]] + ["prediction"]
    rows = []
    for d, kind in zip(results, kinds, strict=True):
        rows.append(
            (
                *head,
                d.feature,
                kind,
                d.rows_reference,
                d.rows_current,
                d.psi,
                d.ks,
                d.wasserstein,
                d.jensen_shannon,
                d.chi2_p,
                d.null_share_reference,
                d.null_share_current,
                threshold,
                bool(d.psi is not None and d.psi > threshold),
                list(d.bins),
                [int(c) for c in d.reference_counts],
                [int(c) for c in d.current_counts],
            )
        )
    return rows


def _day_rows(
    spark: SparkSession, pipeline: Pipeline, date: dt.date
) -> tuple[DataFrame, DataFrame]:
    """(the feature rows of D, the champion predictions of D); errors name what to run."""
    spec = pipeline.spec
    features = _require(
        spark, pipeline, spec.features.table, "run build_features and predict first"
    ).where(F.col(FEATURE_DATE) == F.lit(date))
    preds = _require(
        spark, pipeline, spec.model.predictions, f"run predict for {date} first"
    ).where(F.col(PREDICTION_DATE) == F.lit(date))
    return features, preds


def _history(
    spark: SparkSession, pipeline: Pipeline, ref: tracking.ModelRef, date: dt.date, n: int
) -> list[tuple[dt.date, dict[str, float]]]:
    """The champion's earlier monitor runs (before D), newest first: (date, feature -> PSI)."""
    path = pipeline.table_path(DRIFT)
    if delta_io.version(spark, path) is None:
        return []
    rows = (
        delta_io.read(spark, path)
        .where(
            (F.col("model_name") == ref.name)
            & (F.col("model_version") == ref.version)
            & (F.col(RUN_DATE) < F.lit(date))
            & (F.col("kind") != "prediction")
        )
        .groupBy(RUN_DATE)
        .agg(F.map_from_entries(F.collect_list(F.struct("feature", "psi"))).alias("psi"))
        .orderBy(F.col(RUN_DATE).desc())
        .limit(n)
        .collect()
    )
    return [(r[RUN_DATE], dict(r["psi"])) for r in rows]


def _last_trained(runs: DataFrame, date: dt.date) -> dt.date | None:
    r = (
        runs.where(
            (F.col("job") == "train")
            & (F.col("status") == runlog.SUCCEEDED)
            & (F.col("run_date") <= F.lit(date))
        )
        .agg(F.max("run_date").alias("d"))
        .first()
    )
    return r["d"] if r else None


def _new_labels(
    labels: DataFrame, pipeline: Pipeline, after: dt.date | None, date: dt.date
) -> int | None:
    if after is None:
        return None
    day = local_date(quality.LABEL_TS, pipeline.spec.timezone)
    return labels.where((day > F.lit(after)) & (day <= F.lit(date))).count()


def _test_values(client, refs: dict[int, str], metrics: tuple[str, ...]) -> dict[tuple, float]:
    """(model version, metric) -> the version's own test-window score (MLflow test_<metric>)."""
    out = {}
    for version, run_id in refs.items():
        logged = client.get_run(run_id).data.metrics
        for m in metrics:
            if f"test_{m}" in logged:
                out[(version, m)] = float(logged[f"test_{m}"])
    return out


def _online_rows(
    spark: SparkSession,
    pipeline: Pipeline,
    date: dt.date,
    ref: reference.Reference,
    labels: DataFrame,
    features: DataFrame,
) -> list[tuple] | None:
    """ONLINE_SCHEMA rows (without the run date, run id and model name) of the requests the
    online server answered on `date`; None when the pipeline serves nothing or the request log
    does not exist yet."""
    spec = pipeline.spec
    if spec.serving is None:
        return None
    path = pipeline.table_path(spec.serving.log_table)
    if delta_io.version(spark, path) is None:
        log.info("no online request log at %s yet: no online section", path)
        return None
    m = spec.model
    served = online.served_on(delta_io.read(spark, path), date).cache()
    try:
        rows: list[tuple] = []
        for r in online.traffic(served).orderBy("model_alias", "model_version").collect():
            rows.append(
                ("traffic", r["model_alias"], r["model_version"], None, None, r["requests"])
                + (r["rows"], r["mean_prediction"], r["latency_p50_ms"], r["latency_p99_ms"])
                + (None, None, None, None)
            )
        inputs = set(m.features.numeric) | set(m.features.categorical)
        watched = [f for f in spec.watched_features if f in inputs and f in ref.features]
        types = T.StructType([features.schema[f] for f in watched])
        keys = T.StructType([features.schema[k] for k in spec.entity_keys])
        records = online.scored_records(served, types, keys)
        if rows and watched and records.limit(1).count():
            current = drift.current_profile(records, {f: ref.features[f] for f in watched})
            for f in watched:
                d = drift.compare(ref.features[f], current[f])
                drifted = bool(d.psi is not None and d.psi > spec.monitoring.psi_threshold)
                rows.append(
                    ("drift", None, None, f, None, None, d.rows_current, None, None, None)
                    + (d.psi, drifted, None, None)
                )
            for r in online.alias_quality(
                records, labels, spec.entity_keys, m.task, m.metrics
            ).collect():
                rows.append(
                    ("quality", r[quality.ROLE], r["model_version"], None, r["metric"], None)
                    + (r["predictions"], None, None, None, None, None, r["value"])
                    + (r["matured_labels"],)
                )
        return rows
    finally:
        served.unpersist()


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    spec = pipeline.spec
    if spec.model is None or spec.features is None or spec.monitoring is None:
        raise JobError(f"pipeline {pipeline.name} needs `features` and `model` to be monitored")
    m, mon = spec.model, spec.monitoring
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        client = tracking.configure(pipeline.cfg)
        champion = tracking.by_alias(client, m.name, tracking.CHAMPION)
        if champion is None:
            raise JobError(
                f"model {m.name} has no `{tracking.CHAMPION}` in the registry: nothing to "
                "monitor; run train until a model passes the promotion gate"
            )
        ref = reference.load(spark, pipeline, champion)
        if ref is None:
            raise JobError(
                f"{m.name} v{champion.version} has no reference profile in "
                f"{spec.table(reference.REFERENCE)}: it is written when train registers a "
                "model; retrain (lakeloop run train) to monitor this pipeline"
            )
        features, preds = _day_rows(spark, pipeline, date)
        watched = spec.watched_features
        missing = [f for f in watched if f not in ref.features]
        if missing:
            raise JobError(
                f"{m.name} v{champion.version}'s reference profile has no {missing}: they are "
                "not columns of its training set, or monitoring.features changed since it was "
                "trained (fix monitoring.features, or retrain)"
            )
        # the rows the champion scored today (a challenger-only day has none)
        scored = preds.where(F.col("model_version") == champion.version)
        n_scored = scored.count()
        if n_scored == 0:
            raise JobError(
                f"{spec.table(m.predictions)} has no predictions of {date} by {m.name} "
                f"v{champion.version} (the champion): run predict for {date} first"
            )
        current = drift.current_profile(features, {f: ref.features[f] for f in watched})
        current_pred = drift.current_profile(
            reference.scores(
                scored, m, "probability" if m.task == "classification" else "prediction"
            ),
            {reference.SCORE: ref.prediction},
        )[reference.SCORE]
        results = drift_rows(ref, current, current_pred)
        head = (date, rec.run_id, champion.name, champion.version)
        drift_df = spark.createDataFrame(
            _drift_table_rows(results, head, mon.psi_threshold), DRIFT_SCHEMA
        )

        # quality from matured labels, per model version / role / prediction date
        all_preds = delta_io.read(spark, pipeline.table_path(m.predictions))
        window = quality.predictions_window(all_preds, date, mon.quality_days)
        labels = quality.matured_labels(spark, pipeline, date)
        joined = quality.with_labels(window, labels.rows, spec.entity_keys)
        per_role = quality.by_role(joined, m.task).cache()
        try:
            q = quality.quality_metrics(per_role, m.task, m.metrics).collect()
            metric = policy.quality_metric(spec)
            pooled = {
                (r["model_version"], r["role"]): (r["value"], r["matured_labels"])
                for r in quality.pooled(per_role, m.task, metric).collect()
            }
        finally:
            per_role.unpersist()
        versions = {champion.version: champion.run_id}
        for r in q:
            if r["model_version"] not in versions:
                versions[r["model_version"]] = tracking.by_version(
                    client, m.name, r["model_version"]
                ).run_id
        tests = _test_values(client, versions, m.metrics)
        quality_df = spark.createDataFrame(
            [
                (
                    date,
                    rec.run_id,
                    r["model_name"],
                    r["model_version"],
                    r["role"],
                    r[PREDICTION_DATE],
                    r["metric"],
                    r["value"],
                    tests.get((r["model_version"], r["metric"])),
                    r["predictions"],
                    r["matured_labels"],
                    labels.table,
                    labels.version,
                )
                for r in q
            ],
            QUALITY_SCHEMA,
        )

        # the data-quality trend of the last trend_days
        runs = runlog.runs(spark, pipeline).cache()
        try:
            first = date - dt.timedelta(days=mon.trend_days - 1)
            vruns = trend.validate_runs(runs, first, date)
            parts = []
            for v in spec.expectations:
                t = trend.table_trend(vruns, v, spec.table(v.silver))
                qpath = pipeline.table_path(v.quarantine)
                if delta_io.version(spark, qpath) is not None:
                    top = trend.top_reasons(delta_io.read(spark, qpath), first, date)
                    t = t.join(top, "data_date", "left")
                else:
                    t = t.withColumn("top_reasons", F.lit(None).cast("map<string,bigint>"))
                parts.append(t)
            trend_rows = []
            for t in parts:
                trend_rows += t.collect()  # one small row per table and day
            last_trained = _last_trained(runs, date)
        finally:
            runs.unpersist()
        dq_df = spark.createDataFrame(
            [
                (
                    date,
                    rec.run_id,
                    champion.name,
                    champion.version,
                    r["table"],
                    r["data_date"],
                    r["rows_in"],
                    r["silver_rows"],
                    r["quarantined"],
                    r["pass_rate"],
                    dict(r["top_reasons"] or {}),
                    r["validate_run_id"],
                    r["data_docs"],
                )
                for r in trend_rows
            ],
            DATA_QUALITY_SCHEMA,
        )

        # the retrain policy
        today = {d.feature: d.psi for d in results[:-1]}
        of_last = spec.retrain.drift.of_last if spec.retrain.drift else 1
        history = [(date, today), *_history(spark, pipeline, champion, date, of_last - 1)]
        value, n_labels = pooled.get((champion.version, quality.CHAMPION), (None, 0))
        inputs = policy.PolicyInputs(
            run_date=date,
            drift_runs=history,
            quality_value=value,
            quality_labels=int(n_labels or 0),
            test_value=tests.get((champion.version, metric)),
            new_labels=(
                _new_labels(labels.rows, pipeline, last_trained, date)
                if spec.retrain.new_labels
                else None
            ),
            last_trained=last_trained,
        )
        decision = policy.decide(spec, inputs)
        decision_df = spark.createDataFrame(
            [
                (
                    *head,
                    decision.recommended,
                    decision.rule,
                    decision.in_cooldown,
                    decision.reason,
                    json.dumps(decision.evidence, sort_keys=True, default=str),
                    last_trained,
                )
            ],
            DECISIONS_SCHEMA,
        )
        # the rows of each table, known on the driver (no Spark count of local rows)
        written_rows = {
            DRIFT: len(results),
            QUALITY: len(q),
            DATA_QUALITY: len(trend_rows),
            DECISIONS: 1,
        }
        tables = [
            (DRIFT, drift_df),
            (QUALITY, quality_df),
            (DATA_QUALITY, dq_df),
            (DECISIONS, decision_df),
        ]
        served = _online_rows(spark, pipeline, date, ref, labels.rows, features)
        if served is not None:
            online_head = (date, rec.run_id, champion.name)
            tables.append(
                (ONLINE, spark.createDataFrame([online_head + r for r in served], ONLINE_SCHEMA))
            )
            written_rows[ONLINE] = len(served)
            rec.details["online"] = (
                ", ".join(
                    f"{r[1]} v{r[2]}: {r[6]} records" if r[2] is not None else f"{r[1]}: {r[6]}"
                    for r in served
                    if r[0] == "traffic"
                )
                or "no requests"
            )
        for key, df in tables:
            path = pipeline.table_path(key)
            delta_io.replace_partition(
                df, path, RUN_DATE, date.isoformat(), rec.run_id, partition_by=RUN_DATE
            )
            rec.add_version(spec.table(key), delta_io.version(spark, path))
            rec.output_counts[key] = written_rows[key]
        drifted = sorted(d.feature for d in results[:-1] if d.psi > mon.psi_threshold)
        rec.input_counts["scored_entities"] = n_scored
        rec.input_counts["matured_labels"] = int(n_labels or 0)
        rec.details.update(
            model=m.name,
            champion_version=str(champion.version),
            retrain_recommended=str(decision.recommended).lower(),
            rule=decision.rule,
            in_cooldown=str(decision.in_cooldown).lower(),
            reason=decision.reason,
            drifted=", ".join(drifted),
            prediction_psi=f"{results[-1].psi:.4g}",
            label_version="" if labels.version is None else str(labels.version),
        )
    return rec


def report(rec: runlog.RunRecord) -> None:
    d = rec.details
    verdict = "RETRAIN RECOMMENDED" if d["retrain_recommended"] == "true" else "no retrain"
    sys.stdout.write(
        f"monitor {rec.run_date}: {d['model']} v{d['champion_version']}: {verdict} "
        f"(rule {d['rule']}{', in cooldown' if d['in_cooldown'] == 'true' else ''}): "
        f"{d['reason']}\n"
        f"  drifted features: {d['drifted'] or 'none'}; prediction PSI {d['prediction_psi']}; "
        f"{rec.input_counts.get('matured_labels', 0)} matured labels for the champion\n"
        + (f"  served online: {d['online']}\n" if "online" in d else "")
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
