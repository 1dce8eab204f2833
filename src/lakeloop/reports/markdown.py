"""The Markdown reports a person reads beside the run log, rendered from Jinja2 templates
(templates/*.md.j2) over small Python values: the data-quality summary of a validate run, the
model report of a train run and the demo's ingest report. Rendering only: the callers read the
tables, write the files and mask secrets (`config.mask`)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2
from pyspark.sql import Row

from lakeloop import runlog
from lakeloop.spec import Bound, Pipeline

if TYPE_CHECKING:  # MLflow (imported by ml.tracking) costs seconds: only the model report needs it
    from lakeloop.jobs.validate import TableSummary
    from lakeloop.ml import tracking
    from lakeloop.ml.model_log import TrainingResult

WEIGHT_TITLES = {
    "importance": "Feature importances",
    "coefficient": "Coefficients by magnitude (each on its feature's own scale)",
}
TOP_WEIGHTS = 10  # features listed in the model report


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lakeloop.reports", "templates"),
        autoescape=False,  # Markdown, not HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = format  # {{ x | fmt(".6g") }}: Python's format spec
    env.filters["json"] = json.dumps  # (Jinja's tojson escapes for HTML)
    return env


def _render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)


def moved_text(moved: Mapping[str, Mapping[str, int]], changes: Mapping[str, str]) -> str:
    """Rows of other dates a validate run moved (cross-date de-duplication), one sentence:
    `<date>: <n> <what changes[change] says>, ...; <date>: ...`, dates and changes sorted."""
    return "; ".join(
        f"{d}: " + ", ".join(f"{n} {changes[c]}" for c, n in sorted(moved[d].items()))
        for d in sorted(moved)
    )


def data_quality_summary(
    pipeline: Pipeline,
    date: dt.date,
    summaries: Sequence[TableSummary],
    *,
    top_rules: int,
    changes: Mapping[str, str],
) -> str:
    """The validate run's summary: per table, the counts and pass rate, the `top_rules` failing
    row rules with their example rows, rows of other dates moved (`changes` words each kind),
    the flags on silver rows, the table-level (GX) outcomes and the Data Docs link."""
    return _render(
        "data_quality.md.j2",
        pipeline=pipeline,
        date=date,
        tables=[(pipeline.spec.table(s.source), s) for s in summaries],
        top_rules=top_rules,
        moved=lambda s: moved_text(s.moved, changes),
    )


def _bound(threshold: Bound | None) -> str:
    if threshold is None:
        return ""
    limits = (("min", threshold.min), ("max", threshold.max))
    return " ".join(f"{n} {x:g}" for n, x in limits if x is not None)


def model_report(
    pipeline: Pipeline,
    date: dt.date,
    rec: runlog.RunRecord,
    ref: tracking.ModelRef,
    result: TrainingResult,
) -> str:
    """The model report of a train run: decision, scores beside the naive baseline's and the
    champion's on the same window, tuning, importances, lineage."""
    from lakeloop.ml import tracking

    spec = pipeline.spec
    m, label, lineage = spec.model, spec.label, result.lineage
    kind, weights = result.weights
    return _render(
        "model_report.md.j2",
        pipeline=pipeline,
        date=date,
        ref=ref,
        m=m,
        d=result.decision,
        result=result,
        rec=rec,
        timezone=spec.timezone,
        label=label,
        label_name=spec.model_label,
        label_value=f"`{label.expr}`" if label.expr else label.column,
        label_source=spec.table(label.source),
        label_where="the entity's own table" if spec.label_on_entity else "label events",
        bounds={k: _bound(m.promotion.thresholds.get(k)) for k in result.metrics},
        kind=kind,
        weights_title=WEIGHT_TITLES.get(kind, kind),
        top=TOP_WEIGHTS,
        top_weights=list(weights.items())[:TOP_WEIGHTS],
        training_set={
            "table": lineage[tracking.TAG_TABLE],
            "version": lineage[tracking.TAG_VERSION],
            "rows": lineage[tracking.TAG_ROWS],
            "path": lineage[tracking.TAG_PATH],
        },
        spec_hash=pipeline.spec_hash(),
    )


def ingest_report(
    pipeline: Pipeline,
    counts: Mapping[str, Mapping[str, int]],
    generated: Mapping[str, Any],
    runs: Sequence[Row],
) -> str:
    """The demo's ingest report: what the generator made (`generated`: its summary), the row
    count (and malformed rows kept) of every table, and the latest `runs` of the run log
    (rows with run_id, job, run_date, status, duration_s, output_counts, error)."""
    return _render(
        "ingest.md.j2",
        pipeline=pipeline,
        generated=generated,
        tables=[
            (pipeline.spec.tables[key], pipeline.table_path(key), c) for key, c in counts.items()
        ],
        runs=runs,
    )
