"""report: the HTML run report of a pipeline and date, rebuilt from the tables (the metrics
tables the monitor wrote, the silver, feature and prediction tables, the run log and the
registry): `<lakehouse_root>/reports/<pipeline>/html/<date>.html` and `index.html` across the
monitored dates, with one plotly.min.js beside them (the pages open offline), written through
the session's Hadoop FileSystem (the root may be `hdfs://`, `s3a://` ...). The page's URI is
printed and recorded in the run log (details `report`, `index`). A date the monitor
has not run for is an error that says to run it."""

from __future__ import annotations

import datetime as dt
import sys

from pyspark.sql import SparkSession

from lakeloop import runlog
from lakeloop.jobs.common import main_for
from lakeloop.reports import html, run_report
from lakeloop.spec import Pipeline

JOB = "report"


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        report = run_report.collect(spark, pipeline, date)
        out = html.write(spark, report, html.output_dir(pipeline))
        rec.output_counts["report_bytes"] = out.page_bytes
        rec.details.update(report=out.page, index=out.index)
    return rec


def latest_date(spark: SparkSession, pipeline: Pipeline) -> dt.date:
    """The latest monitored date (the decisions table's latest run date)."""
    return run_report.latest_date(spark, pipeline)


def report(rec: runlog.RunRecord) -> None:
    kb = rec.output_counts["report_bytes"] / 1024
    sys.stdout.write(
        f"run report of {rec.pipeline} for {rec.run_date}: {rec.details['report']} ({kb:.0f} KB)\n"
        f"index: {rec.details['index']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=report)
