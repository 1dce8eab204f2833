"""validate: the day's bronze rows -> GX suite gate -> cleaning -> silver + quarantine.

The suite (expectations/<pipeline>/<table>.json) is the one source of truth. Its row-level
expectations are compiled to Spark expressions and evaluated together in one pass; rows that
fail any rule, or that cleaning removes (missing value with `drop`, superseded duplicate), go to
the quarantine table with the rules that failed, the suite version, their source position and
the run id. Table-level expectations run through GX on the rows bound for silver; a failed
blocking one fails the run and nothing is written for the date. Invariant, checked every run:
bronze rows for the date = silver + quarantine.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.config import SpecError, mask
from lakeloop.jobs.common import JobError, main_for
from lakeloop.quality.gx_runner import TableValidation, validate_table_level
from lakeloop.quality.rules import (
    FAILED,
    CompiledSuite,
    SuiteError,
    check_columns,
    load_suite,
    rule_failure_counts,
    with_rule_failures,
)
from lakeloop.spec import Pipeline, ValidationSpec
from lakeloop.transforms.cleaning import (
    FLAGS,
    cleaned,
    cleaning_stats,
    normalized,
    unknown_columns,
)

log = logging.getLogger(__name__)
JOB = "validate"
DATE_COLUMN = "_ingest_date"
_BRONZE_ONLY = ("_raw", "_error")


@dataclass
class TableSummary:
    source: str
    bronze: int
    silver: int
    quarantine: int
    top_rules: list[tuple[str, int]]
    table_level: TableValidation | None = None
    flags: dict[str, int] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float:
        return self.silver / self.bronze if self.bronze else 0.0


def silver_rows(candidates: DataFrame) -> DataFrame:
    """Rows that passed the gate and cleaning, without bronze-only columns."""
    drop = [c for c in (*_BRONZE_ONLY, FAILED) if c in candidates.columns]
    return candidates.where(F.size(FAILED) == 0).drop(*drop)


def quarantine_rows(
    gate_failed: DataFrame, cleaning_failed: DataFrame, suite: CompiledSuite, run_id: str
) -> DataFrame:
    """Every row kept out of silver, with the failed rules, suite version and run id."""
    gate = gate_failed.withColumn(FLAGS, F.array().cast("array<string>"))
    return gate.unionByName(cleaning_failed).select(
        "*",
        F.array_join(FAILED, "; ").alias("_reason"),
        F.lit(suite.name).alias("_suite"),
        F.lit(suite.version).alias("_suite_version"),
        F.lit(run_id).alias("_run_id"),
    )


def table_inputs(
    spark: SparkSession, pipeline: Pipeline, i: int, v: ValidationSpec, date: dt.date
) -> tuple[CompiledSuite, DataFrame]:
    """The suite and the day's bronze rows of `expectations[i]`, checked against each other and
    against the cleaning spec before anything is written."""
    cfg = pipeline.cfg
    try:
        suite = load_suite(cfg.path(cfg.expectations_dir) / v.suite)
    except SuiteError as e:
        raise JobError(str(e)) from None
    bronze_path = pipeline.table_path(v.source)
    if delta_io.version(spark, bronze_path) is None:
        raise JobError(
            f"{pipeline.spec.table(v.source)} does not exist yet at {bronze_path}; "
            "run the ingest jobs first"
        )
    bronze = delta_io.read(spark, bronze_path).where(F.col(DATE_COLUMN) == F.lit(date))
    try:
        check_columns(suite, bronze.columns, pipeline.spec.table(v.source))
    except SuiteError as e:
        raise JobError(str(e)) from None
    unknown = unknown_columns(v.cleaning, bronze.columns)
    if unknown:
        raise SpecError(
            f"pipeline {pipeline.name}: "
            + ", ".join(f"expectations[{i}].{k}" for k in unknown)
            + f": no such column in {pipeline.spec.table(v.source)} (it has: "
            + ", ".join(c for c in bronze.columns if not c.startswith("_"))
            + "); nothing was written"
        )
    return suite, bronze


def validate_table(
    spark: SparkSession,
    pipeline: Pipeline,
    v: ValidationSpec,
    inputs: tuple[CompiledSuite, DataFrame],
    date: dt.date,
    rec: runlog.RunRecord,
    report_dir: Path,
) -> TableSummary:
    suite, bronze = inputs
    gated = with_rule_failures(bronze, suite.row_rules).persist()
    candidates = None
    try:
        passing = normalized(gated.where(F.size(FAILED) == 0), v.cleaning)
        stats = cleaning_stats(passing, v.cleaning).first().asDict()
        candidates = cleaned(passing, v.cleaning, stats).persist()
        silver = silver_rows(candidates)
        quarantine = quarantine_rows(
            gated.where(F.size(FAILED) > 0), candidates.where(F.size(FAILED) > 0), suite, rec.run_id
        )
        docs = report_dir / v.source / "data_docs"
        table_level = validate_table_level(
            silver, suite.table_suite(), docs, f"{pipeline.name}-{v.source}-{date}"
        )
        if table_level.blocking_failures:
            failed = "; ".join(
                f"{o.type}({o.kwargs}) observed {o.observed}" for o in table_level.blocking_failures
            )
            raise JobError(
                f"{pipeline.spec.table(v.source)} on {date}: blocking expectation(s) "
                f"failed: {failed}. Nothing was written for this date; see "
                f"{table_level.docs_index}"
            )
        silver_path = pipeline.table_path(v.silver)
        quarantine_path = pipeline.table_path(v.quarantine)
        for df, path, key in (
            (silver, silver_path, v.silver),
            (quarantine, quarantine_path, v.quarantine),
        ):
            delta_io.replace_partition(
                df, path, DATE_COLUMN, date.isoformat(), rec.run_id, partition_by=DATE_COLUMN
            )
            rec.add_version(pipeline.spec.table(key), delta_io.version(spark, path))
        n_bronze = gated.count()
        top = sorted(
            ((r["rule"], r["failed_rows"]) for r in rule_failure_counts(quarantine).collect()),
            key=lambda x: -x[1],
        )
        flags = {
            r["flag"]: r["n"]
            for r in silver.select(F.explode(FLAGS).alias("flag"))
            .groupBy("flag")
            .agg(F.count(F.lit(1)).alias("n"))
            .collect()
        }
    finally:
        gated.unpersist()
        if candidates is not None:
            candidates.unpersist()
    day = F.col(DATE_COLUMN) == F.lit(date)
    n_silver = delta_io.read(spark, silver_path).where(day).count()
    n_quarantine = delta_io.read(spark, quarantine_path).where(day).count()
    if n_bronze != n_silver + n_quarantine:  # never expected; loud if it ever happens
        raise JobError(
            f"invariant broken for {v.source} on {date}: bronze {n_bronze} != "
            f"silver {n_silver} + quarantine {n_quarantine}"
        )
    rec.input_counts[v.source] = n_bronze
    rec.output_counts[v.silver] = n_silver
    rec.output_counts[v.quarantine] = n_quarantine
    return TableSummary(v.source, n_bronze, n_silver, n_quarantine, top, table_level, flags)


def summary_text(pipeline: Pipeline, date: dt.date, summaries: list[TableSummary]) -> str:
    lines = [f"# Data quality: {pipeline.name} on {date}", ""]
    for s in summaries:
        lines += [
            f"## {pipeline.spec.table(s.source)}",
            "",
            f"- bronze rows: {s.bronze}; silver: {s.silver}; quarantine: {s.quarantine}; "
            f"pass rate: {s.pass_rate:.2%}",
        ]
        if s.top_rules:
            lines.append(
                "- top failing rules: " + ", ".join(f"{r} ({n})" for r, n in s.top_rules[:5])
            )
        if s.flags:
            lines.append(
                "- flags on silver rows: "
                + ", ".join(f"{k} ({n})" for k, n in sorted(s.flags.items()))
            )
        if s.table_level and not s.table_level.outcomes:
            lines.append("- table-level expectations: none in the suite (GX not run)")
        elif s.table_level:
            for o in s.table_level.outcomes:
                mark = "pass" if o.success else ("FAIL (blocking)" if o.blocking else "fail")
                lines.append(f"- {mark}: {o.type} {o.kwargs} observed {o.observed}")
            lines.append(f"- GX Data Docs: {s.table_level.docs_index}")
        lines.append("")
    return "\n".join(lines)


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    if not pipeline.spec.expectations:
        raise JobError(f"pipeline {pipeline.name} declares no `expectations`")
    report_dir = pipeline.root / "reports" / pipeline.name / "validate" / date.isoformat()
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        specs = pipeline.spec.expectations
        inputs = [table_inputs(spark, pipeline, i, v, date) for i, v in enumerate(specs)]
        summaries = [
            validate_table(spark, pipeline, v, inp, date, rec, report_dir)
            for v, inp in zip(specs, inputs, strict=True)
        ]
        report_dir.mkdir(parents=True, exist_ok=True)
        summary = report_dir / "summary.md"
        summary.write_text(mask(summary_text(pipeline, date, summaries)))
        rec.details["summary"] = str(summary)
        for s in summaries:
            if s.table_level and s.table_level.docs_index:
                rec.details[f"{s.source}.data_docs"] = str(s.table_level.docs_index)
    return rec


def _print_summary(rec: runlog.RunRecord) -> None:
    sys.stdout.write(Path(rec.details["summary"]).read_text())
    sys.stdout.write(f"\nsummary: {rec.details['summary']}\n")


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=_print_summary)
