"""`lakeloop demo --in-process`: the whole lifecycle in this one process, no Airflow (the
quick way to try a spec; `lakeloop demo` without the flag runs it through Airflow:
lakeloop.orchestration.demo).

Prepares the example (lakeloop.demo_data: the broker, the topics, the houses example), then
ingests every day's files and the Kafka topic into bronze Delta, validates each day into
silver + quarantine (with GX Data Docs and a summary), builds the feature table, trains on the
backlog (the point-in-time training set as of the first day; the model becomes the champion
only through the promotion gate, and its reference profile is stored), then for each day
writes the batch predictions and runs the monitor (drift against the reference, quality from
the labels matured so far, the data-quality trend, the retrain decision), and ends with the
HTML run report of the last day and its index. Re-running it is harmless: files are rewritten
identically, days already produced to Kafka are not produced again, ingest, predictions and
metrics replace what they wrote, and a retrained model only replaces the champion when it
beats it by the spec's margin (otherwise it is scored in shadow as challenger).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, demo_data, runlog
from lakeloop.config import AppConfig
from lakeloop.jobs import (
    build_features,
    build_training_set,
    ingest_files,
    ingest_kafka,
    materialize,
    monitor,
    predict,
    train,
    validate,
)
from lakeloop.jobs import report as report_job
from lakeloop.ml import tracking
from lakeloop.reports import markdown
from lakeloop.session import build_spark
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)


def table_counts(spark: SparkSession, pipeline: Pipeline) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key in pipeline.spec.tables:
        path = pipeline.table_path(key)
        if delta_io.version(spark, path) is None:
            out[key] = {"rows": 0}
            continue
        df = delta_io.read(spark, path)
        if "_error" in df.columns and key != "dead_letter":
            r = df.agg(F.count(F.lit(1)).alias("rows"), F.count("_error").alias("bad")).first()
            out[key] = {"rows": r["rows"], "malformed": r["bad"]}
        else:
            out[key] = {"rows": df.count()}
    return out


def ingest_report(spark: SparkSession, pipeline: Pipeline, counts: dict, summary: dict) -> str:
    """The ingest report (reports/markdown.py) with the run log's 20 latest runs."""
    runs = runlog.runs(spark, pipeline).orderBy(F.col("started_at").desc()).limit(20).collect()
    return markdown.ingest_report(pipeline, counts, summary, runs)


def run_demo(cfg: AppConfig, args: argparse.Namespace) -> int:
    data = demo_data.prepare(cfg, args)
    pipeline, broker, topics = data.pipeline, data.broker, data.topics
    days, last, drift_after, summary = data.days, data.days[-1], data.drift_after, data.summary
    spark = build_spark(cfg, app_name="lakeloop-demo")
    for d in days:
        ingest_files.run(spark, pipeline, d)
    ingest_kafka.run(spark, pipeline, last)
    summaries = []
    for d in days:
        rec = validate.run(spark, pipeline, d)
        summaries.append(rec.details["summary"])
    build_features.backfill(spark, pipeline, args.start, last)
    # the model learns from the backlog of sales before the first day (the training set as of
    # the first day), then scores every day; the monitor compares each day with what it
    # learned from, scores it on the labels matured since, and decides whether to retrain
    build_training_set.run(spark, pipeline, args.start)
    trained = train.run(spark, pipeline, args.start)
    scored, monitored = [], []
    for d in days:
        scored.append(predict.run(spark, pipeline, d))
        monitored.append(monitor.run(spark, pipeline, d))
    reported = report_job.run(spark, pipeline, last)
    if pipeline.spec.serving is not None:
        materialize.run(spark, pipeline, last)
    counts = table_counts(spark, pipeline)
    report_dir = pipeline.local_root / "reports" / pipeline.name
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "ingest.md"
    report.write_text(ingest_report(spark, pipeline, counts, summary))
    out = [f"\nlakeloop demo: pipeline {pipeline.name}, lakehouse {cfg.lakehouse_root}"]
    for key, c in counts.items():
        extra = f" ({c['malformed']} malformed, kept with reason)" if "malformed" in c else ""
        out.append(
            f"  {pipeline.spec.tables[key]:<28} {c['rows']:>7} rows{extra}  "
            f"{pipeline.table_path(key)}"
        )
    t, p = trained.details, scored[-1].details
    if t["decision"] == "promoted":
        champion = f"v{t['model_version']} (this run's model): {t['metrics']}"
    else:
        champion = (
            f"v{t['champion_version']}: {t['metric']} {t['champion_score']} on the same window"
            if t["champion_version"]
            else "none (no model has passed the promotion gate yet)"
        )
    shadow = (
        f"; challenger v{p['challenger_version']} scored in shadow"
        if p["challenger_version"]
        else ""
    )
    out.append(
        f"  trained {t['model']} v{t['model_version']}: {t['decision']} ({t['reason']})\n"
        f"    its test metrics on {t['test_window']}: {t['metrics']}\n"
        f"    model report: {t['report']}\n"
        f"  champion {t['model']} {champion}{shadow}"
    )
    out.append(
        f"  predictions: {sum(r.output_counts[pipeline.spec.model.predictions] for r in scored)} "
        f"rows for {args.days} day(s) in {p['table']} ({p['path']})"
    )
    out.append(
        f"  MLflow: {tracking.resolve_uri(cfg, cfg.mlflow.tracking_uri)} "
        "(browse: .venv/bin/mlflow ui --backend-store-uri <that URI>)"
    )
    out.append(f"  Kafka broker: {broker['bootstrap']} (stop it with `make kafka-down`)")
    for t in topics:
        retention = f"retention.ms {t.retention_ms} ({t.retention_source})"
        out.append(
            f"    topic {t.topic}: {t.partitions} partition(s), {retention}"
            f"{'; ' + ', '.join(t.changes) if t.changes else ''}"
        )
    out.append(f"  monitor (drift after {drift_after}; retrain policy: spec `retrain:`):")
    for rec in monitored:
        d = rec.details
        verdict = "RETRAIN recommended" if d["retrain_recommended"] == "true" else "no retrain"
        cooling = " (in cooldown)" if d["in_cooldown"] == "true" else ""
        out.append(
            f"    {rec.run_date}: drifted [{d['drifted'] or '-'}], prediction PSI "
            f"{d['prediction_psi']}, {rec.input_counts['matured_labels']} matured labels: "
            f"{verdict}{cooling} (rule: {d['rule']})"
        )
    out.append(f"    metrics tables: {pipeline.spec.table('metrics_decisions')} and beside it")
    out.append(f"  run report (HTML, opens offline): {reported.details['report']}")
    out.append(f"  report index across dates: {reported.details['index']}")
    out.append(f"  ingest report: {report}")
    out.append(f"  data quality summaries (with GX Data Docs links): {', '.join(summaries)}")
    if pipeline.spec.serving is not None:
        from lakeloop.orchestration.demo import serving_preview

        out.append(serving_preview(cfg, pipeline, last, args.set))
    out.append(f"  latest data quality summary:\n\n{Path(summaries[-1]).read_text()}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
