"""validate: the day's bronze rows -> GX suite gate -> cleaning -> silver + quarantine.

The suite (expectations/<pipeline>/<table>.json) is the one source of truth. Its row-level
expectations are compiled to Spark expressions and evaluated together in one pass; rows that
fail any rule, or that cleaning removes (missing value with `drop`, superseded duplicate), go to
the quarantine table with the rules that failed, the suite version, their source position and
the run id. Table-level expectations run through GX on the rows bound for silver.

`--date D` validates the bronze rows that arrived on D (`_ingest_date`), late events included.
De-duplication by key holds across the whole silver table (`transforms.cleaning`): the date's
latest row per key competes with the other dates' stored rows; the one kept is the latest by
`_ingest_date` (unless `order_by` places it) and `order_by`, and a row superseded by a row of
another date goes to quarantine of its own date with a reason naming that date. Rows of other
dates that change place (silver -> quarantine, or back when their winner went) are rewritten in
the same commit as the date. The result depends only on bronze, not on the order dates run in.

A date is all or nothing: every table of the date is evaluated first (gate, cleaning, dedup,
table-level GX, the summary's counts and top failing rules with example rows); a failed blocking
expectation on any table stops the date before anything is written, and the message names each
table, what blocked and the top row-level failures. Then each table gets one commit for silver
and one for quarantine; if a write fails, the commits this run made are rolled back (Delta
RESTORE) and the message says which. Checked after the writes (a broken check rolls back too):
for every date written, bronze rows = silver + quarantine, and no key of the date's silver rows
is in silver of another date. The summary (summary.md) is written whatever the outcome.

GX Data Docs (the whole suite's results, HTML with its assets vendored, under the report
folder) are rendered per table when `quality.data_docs` is on (the default); off, the
table-level expectations still run through GX and still block, only the site is not rendered.
The report folder is `<lakehouse_root>/reports/<pipeline>/validate/<date>/` on the lakehouse
storage (a URI): summary.md is written through the session's Hadoop FileSystem; GX renders to a
local folder, the report folder itself when the root is local, else a temporary folder uploaded
to it when the run ends (whatever the outcome).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog, storage, uris
from lakeloop.config import SpecError, mask
from lakeloop.jobs.common import JobError, main_for
from lakeloop.quality.datadocs import row_rule_results
from lakeloop.quality.gx_runner import ExpectationOutcome, TableValidation, validate_table_level
from lakeloop.quality.rules import (
    FAILED,
    CompiledSuite,
    SuiteError,
    check_columns,
    load_suite,
    rule_failure_examples,
    with_rule_failures,
)
from lakeloop.reports import markdown
from lakeloop.spec import Dedup, Pipeline, ValidationSpec
from lakeloop.transforms.cleaning import (
    FLAGS,
    SOURCE,
    WINNER,
    across_dates,
    cleaned,
    cleaning_stats,
    normalized,
    projected,
    redecided,
    stored_changes,
    stored_rows,
    unknown_columns,
)

log = logging.getLogger(__name__)
JOB = "validate"
DATE_COLUMN = "_ingest_date"
_BRONZE_ONLY = ("_raw", "_error")
_ROW = "\x00row"  # not a flag: counts silver rows in the flags query (flags are rule names)
TOP_RULES = 5  # failing rules shown in the summary (the error names the first 3)
EXAMPLES = 3  # example rows per failing rule
CHANGES = {
    "to_quarantine": "moved to quarantine (superseded by a later row)",
    "to_silver": "back in silver (the row that superseded it went)",
    "new_winner": "still superseded, now by a row of another date",
}


@dataclass
class TableSummary:
    source: str
    bronze: int
    silver: int
    quarantine: int
    top_rules: list[tuple[str, int]]
    table_level: TableValidation | None = None
    flags: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)  # rule -> example rows
    moved: dict[str, dict[str, int]] = field(default_factory=dict)  # other date -> change -> n
    status: str = "evaluated"  # then what happened: written / not written / rolled back

    @property
    def pass_rate(self) -> float:
        return self.silver / self.bronze if self.bronze else 0.0

    def top_failures(self, n: int = 3) -> str:
        """`rule (k of N rows, e.g. <position> <key> value '<v>')`, for the first n rules."""
        parts = []
        for rule, k in self.top_rules[:n]:
            example = (self.examples.get(rule) or [""])[0]
            parts.append(
                f"{rule} ({k} of {self.bronze} rows{', e.g. ' + example if example else ''})"
            )
        return ", ".join(parts)


@dataclass(frozen=True)
class ReportFolder:
    """The run's report folder: `uri` on the lakehouse storage, and `local`, the driver-disk
    folder GX builds Data Docs in (the report folder itself when the root is local)."""

    uri: str
    local: Path

    def data_docs(self, source: str) -> tuple[Path, str]:
        """Where a table's Data Docs are built, and the URI of their index.html."""
        return self.local / source / "data_docs", uris.join(
            self.uri, source, "data_docs", "index.html"
        )


@contextlib.contextmanager
def report_folder(
    spark: SparkSession, uri: str, in_place: bool | None = None
) -> Iterator[ReportFolder]:
    """The report folder `uri` with a local folder to build in: in place when `uri` is local
    (`in_place` None), else a temporary folder whose content is uploaded to `uri` on exit,
    also when the run failed (a failed upload then is logged, the run's error kept)."""
    if in_place is None:
        in_place = uris.is_local(uri)
    if in_place:
        yield ReportFolder(uri, uris.local_path(uri))
        return
    with tempfile.TemporaryDirectory(prefix="lakeloop-validate-") as tmp:
        failed = True
        try:
            yield ReportFolder(uri, Path(tmp))
            failed = False
        finally:
            try:
                if any(Path(tmp).iterdir()):
                    storage.upload_dir(spark, tmp, uri)
            except Exception:
                if not failed:
                    raise
                log.warning("could not upload the Data Docs to %s", uri, exc_info=True)


@dataclass
class TablePlan:
    """One table of the date, evaluated and nothing written yet: what the writes will put in
    silver and quarantine for `dates` (the date, then other dates whose rows changed place)."""

    spec: ValidationSpec
    summary: TableSummary
    silver: DataFrame
    quarantine: DataFrame
    dates: list[str]
    day_silver: DataFrame  # the date's silver rows (the post-write key check)
    blocking: list[ExpectationOutcome]
    cached: list[DataFrame]


def silver_rows(candidates: DataFrame) -> DataFrame:
    """Rows that passed the gate and cleaning, without bronze-only columns."""
    drop = [c for c in (*_BRONZE_ONLY, FAILED) if c in candidates.columns]
    return candidates.where(F.size(FAILED) == 0).drop(*drop)


def _stamped(df: DataFrame, suite: CompiledSuite, run_id: str) -> DataFrame:
    return df.select(
        "*",
        F.array_join(FAILED, "; ").alias("_reason"),
        F.lit(suite.name).alias("_suite"),
        F.lit(suite.version).alias("_suite_version"),
        F.lit(run_id).alias("_run_id"),
    )


def quarantine_rows(
    gate_failed: DataFrame, cleaning_failed: DataFrame, suite: CompiledSuite, run_id: str
) -> DataFrame:
    """Every row kept out of silver, with the failed rules, suite version and run id."""
    gate = gate_failed.withColumn(FLAGS, F.array().cast("array<string>"))
    return _stamped(gate.unionByName(cleaning_failed), suite, run_id)


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
    bronze = projected(bronze, v.project, f"pipeline {pipeline.name}: expectations[{i}].project")
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


def _key_columns(pipeline: Pipeline, v: ValidationSpec, columns: list[str]) -> list[str]:
    """The columns that name a row in examples: the dedup key, else the entity key."""
    if v.cleaning.dedup:
        return v.cleaning.dedup.key_columns
    keys = pipeline.spec.entity_keys
    return keys if all(k in columns for k in keys) else []


def _rule_columns(suite: CompiledSuite, v: ValidationSpec) -> dict[str, str]:
    """Rule name -> the column whose value an example shows."""
    columns = {r.name: r.column for r in suite.row_rules}
    for name, rule in v.cleaning.missing.items():
        if rule.strategy == "drop":
            columns[f"cleaning.missing_dropped({name})"] = name
    return columns


def _cross_date(
    spark: SparkSession,
    rows: DataFrame,
    dedup: Dedup,
    paths: dict[str, str],
    versions: dict[str, int | None],
    date: dt.date,
) -> tuple[DataFrame, dict[str, dict[str, int]], dict[str, DataFrame]]:
    """`across_dates` of the date's rows against silver and quarantine of the other dates,
    persisted; the other dates' rows that change place, counted per date and change (a few
    numbers to the driver, never rows); and both tables as read: at the versions read when the
    run started, so every decision of the run sees one state of them."""
    other = F.col(DATE_COLUMN) != F.lit(date)
    empty = spark.createDataFrame([], rows.schema)
    stored = {
        k: empty if versions[k] is None else delta_io.read_version(spark, paths[k], versions[k])
        for k in paths
    }
    decided = across_dates(
        rows,
        stored_rows(stored["silver"].where(other), stored["quarantine"].where(other), dedup, rows),
        dedup,
    ).persist()
    moved: dict[str, dict[str, int]] = {}
    for r in stored_changes(decided, dedup).groupBy(DATE_COLUMN, "_change").count().collect():
        moved.setdefault(r[DATE_COLUMN].isoformat(), {})[r["_change"]] = r["count"]
    return decided, moved, stored


def evaluate_table(
    spark: SparkSession,
    pipeline: Pipeline,
    v: ValidationSpec,
    inputs: tuple[CompiledSuite, DataFrame],
    date: dt.date,
    run_id: str,
    report: ReportFolder,
) -> TablePlan:
    """Gate, cleaning, cross-date dedup, table-level GX and the summary of one table of the
    date; nothing is written. Bronze is read once (the gated rows are persisted, and so are
    the date's rows after cleaning and dedup)."""
    suite, bronze = inputs
    paths = {
        "silver": pipeline.table_path(v.silver),
        "quarantine": pipeline.table_path(v.quarantine),
    }
    versions = {k: delta_io.version(spark, path) for k, path in paths.items()}
    gated = with_rule_failures(bronze, suite.row_rules).persist()
    cached = [gated]
    try:
        passing = normalized(gated.where(F.size(FAILED) == 0), v.cleaning)
        stats = cleaning_stats(passing, v.cleaning).first().asDict()
        rows = cleaned(passing, v.cleaning, stats)
        dedup, moved = v.cleaning.dedup, {}
        if dedup:
            decided, moved, stored = _cross_date(spark, rows, dedup, paths, versions, date)
            cached.append(decided)
            day = decided.where(F.col(SOURCE) == "date").drop(SOURCE, WINNER)
        else:
            day = rows.persist()
            cached.append(day)
        silver = silver_rows(day)
        quarantine = quarantine_rows(
            gated.where(F.size(FAILED) > 0), day.where(F.size(FAILED) > 0), suite, run_id
        )
        all_silver, all_quarantine = silver, quarantine
        if moved:  # other dates' rows change place: their partitions are rewritten too
            others = F.col(DATE_COLUMN).isin([dt.date.fromisoformat(d) for d in moved])
            kept, staying, lost = redecided(
                stored["silver"].where(others), stored["quarantine"].where(others), decided, dedup
            )
            lost = _stamped(lost, suite, run_id)
            all_silver = silver.unionByName(kept, allowMissingColumns=True)
            all_quarantine = quarantine.unionByName(staying, allowMissingColumns=True)
            all_quarantine = all_quarantine.unionByName(lost, allowMissingColumns=True)
        summary = _summary(pipeline, v, suite, gated, silver, quarantine, None)
        summary.moved = moved
        # Data Docs (`quality.data_docs`): the table-level outcomes (GX, on the silver rows)
        # and the row rules' outcomes (the summary's counts) in one validation result; offline
        # assets vendored. Without them GX still runs the table-level expectations (the gate).
        docs_dir, docs_uri, row_level = None, "", []
        if pipeline.cfg.quality.data_docs:
            docs_dir, docs_uri = report.data_docs(v.source)
            row_level = row_rule_results(gated, suite, dict(summary.top_rules), summary.bronze)
        table_level = validate_table_level(
            silver,
            suite.table_suite(),
            docs_dir,
            f"{pipeline.name}-{v.source}-{date}",
            row_level,
        )
        if table_level.docs_index is not None:  # named by where it lives on the storage
            table_level = dataclasses.replace(table_level, docs_index=docs_uri)
        summary.table_level = table_level
    except BaseException:
        for df in cached:
            df.unpersist()
        raise
    return TablePlan(
        v,
        summary,
        all_silver,
        all_quarantine,
        [date.isoformat(), *sorted(moved)],
        silver,
        table_level.blocking_failures,
        cached,
    )


def _summary(
    pipeline: Pipeline,
    v: ValidationSpec,
    suite: CompiledSuite,
    gated: DataFrame,
    silver: DataFrame,
    quarantine: DataFrame,
    table_level: TableValidation | None,
) -> TableSummary:
    """Counts, the failing rules (most rows first) with example rows, and silver's flags."""
    # one job for silver's rows and flags: each row adds a ROW marker to its flags
    marked = F.concat(F.array(F.lit(_ROW)), FLAGS)
    flags = {
        r["flag"]: r["n"]
        for r in silver.select(F.explode(marked).alias("flag"))
        .groupBy("flag")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    n_bronze, n_silver = gated.count(), flags.pop(_ROW, 0)
    n_quarantine = n_bronze - n_silver  # every row is in one of them (checked after writing)
    key = _key_columns(pipeline, v, quarantine.columns)
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for r in rule_failure_examples(quarantine, _rule_columns(suite, v), key, EXAMPLES).collect():
        counts[r["rule"]] = r["failed_rows"]
        shown = [x for x in (r["position"], r["key"]) if x]
        if r["value"] is not None:
            shown.append(f"value {r['value']!r}")
        examples.setdefault(r["rule"], []).append(" ".join(shown))
    top = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    return TableSummary(
        v.source, n_bronze, n_silver, n_quarantine, top, table_level, flags, examples
    )


def _tables(pipeline: Pipeline, plan: TablePlan) -> str:
    return f"{pipeline.spec.table(plan.spec.silver)} + {pipeline.spec.table(plan.spec.quarantine)}"


def _blocked_message(
    pipeline: Pipeline, date: dt.date, plans: list[TablePlan], summary: str
) -> str:
    parts = []
    for plan in plans:
        s = plan.summary
        where = f"{_tables(pipeline, plan)} (from {pipeline.spec.table(plan.spec.source)})"
        if not plan.blocking:
            parts.append(f"{where}: passed, not written")
            continue
        failed = "; ".join(f"{o.type}({o.kwargs}) observed {o.observed}" for o in plan.blocking)
        text = f"{where}: blocking expectation(s) failed: {failed}"
        if s.top_rules:
            text += f"; top row-level failures: {s.top_failures()}"
        if s.table_level and s.table_level.docs_index:
            text += f"; Data Docs: {s.table_level.docs_index}"
        parts.append(text)
    return (
        f"validate {pipeline.name} on {date}: nothing was written for this date, every table "
        f"keeps its previous version. {' | '.join(parts)}. See {summary}"
    )


def _roll_back(spark: SparkSession, written: list[tuple[str, str, int]]) -> str:
    if not written:
        return "nothing of this date had been written"
    done = []
    for table, path, version in reversed(written):
        try:
            done.append(f"{table} {delta_io.roll_back(spark, path, version)}")
        except Exception as e:  # say so, and go on with the others
            log.exception("rolling back %s failed", table)
            done.append(f"{table} NOT rolled back ({type(e).__name__}: {str(e)[:200]})")
    return "rolled back what this run had written: " + "; ".join(done)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:500]


def write_date(
    spark: SparkSession,
    pipeline: Pipeline,
    plans: list[TablePlan],
    date: dt.date,
    rec: runlog.RunRecord,
) -> None:
    """Write every evaluated table (silver, then quarantine: one commit each), then check the
    invariants; on a failure roll back what this run committed and say what was written."""
    written: list[tuple[str, str, int]] = []
    todo = [
        (plan, key, df)
        for plan in plans
        for key, df in ((plan.spec.silver, plan.silver), (plan.spec.quarantine, plan.quarantine))
    ]
    for i, (plan, key, df) in enumerate(todo):
        table, path = pipeline.spec.table(key), pipeline.table_path(key)
        dates = plan.dates[0] if len(plan.dates) == 1 else plan.dates
        try:
            delta_io.replace_partition(
                df, path, DATE_COLUMN, dates, rec.run_id, partition_by=DATE_COLUMN
            )
        except Exception as e:
            rolled = _roll_back(spark, written)
            untouched = ", ".join(pipeline.spec.table(k) for _, k, _ in todo[i + 1 :])
            for p in plans:
                p.summary.status = f"NOT written: writing {table} failed ({rolled})"
            message = (
                f"validate {pipeline.name} on {date}: writing {table} failed: {_first_line(e)}. "
                f"{rolled}. Not written: {table}{', ' + untouched if untouched else ''}"
            )
            raise (e.__class__(message) if isinstance(e, JobError) else JobError(message)) from e
        version = delta_io.version_written_by(spark, path, rec.run_id)
        if version is not None:  # None: Delta had nothing to commit (no rows before or now)
            written.append((table, path, version))
            rec.add_version(table, version)
    problems = [p for plan in plans for p in _check(spark, pipeline, plan, date, rec)]
    if problems:  # never expected (a concurrent run of another date can cause the second)
        rolled = _roll_back(spark, written)
        for p in plans:
            p.summary.status = f"NOT written: a check after the writes failed ({rolled})"
        raise JobError(
            f"validate {pipeline.name} on {date}: {'; '.join(problems)}. {rolled}. Re-run the "
            "date (and any date validated at the same time)"
        )
    for p in plans:
        p.summary.status = "written" + (
            f" (and rows of {', '.join(p.dates[1:])} moved)" if len(p.dates) > 1 else ""
        )


def _counts(spark: SparkSession, paths: dict[str, str], dates: list[str]) -> dict[str, dict]:
    """name -> date -> rows of the table at paths[name], for `dates`: one Spark job."""
    days = F.col(DATE_COLUMN).isin([dt.date.fromisoformat(d) for d in dates])
    parts = [
        delta_io.read(spark, path).where(days).select(DATE_COLUMN, F.lit(name).alias("_table"))
        for name, path in paths.items()
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    counts: dict[str, dict] = {name: {} for name in paths}
    for r in union.groupBy("_table", DATE_COLUMN).count().collect():
        counts[r["_table"]][r[DATE_COLUMN].isoformat()] = r["count"]
    return counts


def _check(
    spark: SparkSession, pipeline: Pipeline, plan: TablePlan, date: dt.date, rec: runlog.RunRecord
) -> list[str]:
    """The invariants after the writes; sets the counts written. Empty when all hold."""
    v, s, day = plan.spec, plan.summary, date.isoformat()
    silver_path = pipeline.table_path(v.silver)
    paths = {"silver": silver_path, "quarantine": pipeline.table_path(v.quarantine)}
    if len(plan.dates) > 1:  # the date's bronze rows are the ones evaluated (counted then)
        paths["bronze"] = pipeline.table_path(v.source)
    counts = _counts(spark, paths, plan.dates)
    silver, quarantine = counts["silver"], counts["quarantine"]
    bronze = {**counts.get("bronze", {}), day: s.bronze}
    problems = [
        f"invariant broken for {v.source} on {d}: bronze {bronze.get(d, 0)} != silver "
        f"{silver.get(d, 0)} + quarantine {quarantine.get(d, 0)}"
        for d in plan.dates
        if bronze.get(d, 0) != silver.get(d, 0) + quarantine.get(d, 0)
    ]
    dedup = v.cleaning.dedup
    if dedup:
        keys = plan.day_silver.select(*[F.col(k).alias(f"_k_{k}") for k in dedup.key_columns])
        on = [F.col(k).eqNullSafe(F.col(f"_k_{k}")) for k in dedup.key_columns]
        twice = (
            delta_io.read(spark, silver_path)
            .where(F.col(DATE_COLUMN) != F.lit(date))
            .join(keys, on, "left_semi")
            .select(DATE_COLUMN, *dedup.key_columns)
            .limit(1)
            .collect()
        )
        if twice:
            r = twice[0]
            named = ", ".join(f"{k}={r[k]}" for k in dedup.key_columns)
            problems.append(
                f"{pipeline.spec.table(v.silver)} holds {named} on {day} and on "
                f"{r[DATE_COLUMN]}: another validate run wrote the table at the same time"
            )
    s.silver, s.quarantine = silver.get(day, 0), quarantine.get(day, 0)
    rec.input_counts[v.source] = s.bronze
    rec.output_counts[v.silver] = s.silver
    rec.output_counts[v.quarantine] = s.quarantine
    if s.moved:
        rec.details[f"{v.silver}.moved"] = markdown.moved_text(s.moved, CHANGES)
    return problems


def summary_text(pipeline: Pipeline, date: dt.date, summaries: list[TableSummary]) -> str:
    """The run's summary.md (reports/markdown.py renders it)."""
    return markdown.data_quality_summary(
        pipeline, date, summaries, top_rules=TOP_RULES, changes=CHANGES
    )


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    if not pipeline.spec.expectations:
        raise JobError(f"pipeline {pipeline.name} declares no `expectations`")
    report_uri = pipeline.reports_uri(JOB, date.isoformat())
    summary = uris.join(report_uri, "summary.md")
    with (
        runlog.recording(spark, pipeline, JOB, date) as rec,
        report_folder(spark, report_uri) as report,
    ):
        specs = pipeline.spec.expectations
        inputs = [table_inputs(spark, pipeline, i, v, date) for i, v in enumerate(specs)]
        plans: list[TablePlan] = []
        try:
            for v, inp in zip(specs, inputs, strict=True):
                plans.append(evaluate_table(spark, pipeline, v, inp, date, rec.run_id, report))
            if any(p.blocking for p in plans):
                for p in plans:
                    p.summary.status = "NOT written: " + (
                        "a blocking expectation failed" if p.blocking else "another table blocked"
                    )
                raise JobError(_blocked_message(pipeline, date, plans, summary))
            write_date(spark, pipeline, plans, date, rec)
        finally:
            if plans and len(plans) == len(specs):  # written whatever happened to the date
                text = mask(summary_text(pipeline, date, [p.summary for p in plans]))
                storage.write_text(spark, summary, text)
                rec.details["summary"] = summary
                for p in plans:
                    docs = p.summary.table_level and p.summary.table_level.docs_index
                    if docs:
                        rec.details[f"{p.summary.source}.data_docs"] = str(docs)
            for p in plans:
                for df in p.cached:
                    df.unpersist()
    return rec


def _print_summary(rec: runlog.RunRecord) -> None:
    sys.stdout.write(storage.read_text(SparkSession.active(), rec.details["summary"]))
    sys.stdout.write(f"\nsummary: {rec.details['summary']}\n")


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv, on_success=_print_summary)
