"""Render the run report (`run_report.RunReport`) and the index across dates as HTML with the
Jinja2 templates under templates/ (autoescaped; the figures' own markup from Plotly's
`to_html(full_html=False, include_plotlyjs=False)` is the only thing inserted unescaped).

Written to `<lakehouse_root>/reports/<pipeline>/html/`: `<date>.html`, `index.html` and one
`plotly.min.js` (from the plotly package) that every page loads from beside it: the pages open
offline, with no CDN or other network asset, and stay small (~10-20 KB per figure). The folder
is a URI (a local path, `file:`, `hdfs:`, `s3a:` ...): pages are rendered to strings and written
through the Hadoop FileSystem of the running SparkSession, never with the driver's file I/O."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, StrictUndefined
from pyspark.sql import SparkSession

from lakeloop import storage, uris
from lakeloop.reports import figures
from lakeloop.reports.run_report import IndexRow, RunReport
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def output_dir(pipeline: Pipeline) -> str:
    """`<lakehouse_root>/reports/<pipeline>/html` as a URI."""
    return pipeline.reports_uri("html")


def page_name(date: dt.date) -> str:
    return f"{date.isoformat()}.html"


@dataclass
class Block:
    """One thing in a section: a figure, a plain note (data absent), a table, a preformatted
    text or a list of links."""

    kind: str  # figure | note | table | pre | links | text
    title: str = ""
    html: str = ""  # figure: Plotly's div + script
    text: str = ""  # note / pre / text
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, label)
    small: bool = False  # a figure in the grid of small figures


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]

    @property
    def figures(self) -> int:
        return sum(b.kind == "figure" for b in self.blocks)

    @property
    def parts(self) -> list[list[Block]]:
        """The blocks in order, consecutive small figures together (one grid each)."""
        parts: list[list[Block]] = []
        for b in self.blocks:
            if b.small and parts and parts[-1][-1].small:
                parts[-1].append(b)
            else:
                parts.append([b])
        return parts


class _Figures:
    """Numbers each figure's div id per section, so a rebuild gives the same page."""

    def __init__(self, section: str):
        self.section, self.n = section, 0

    def __call__(self, fig: go.Figure, small: bool = False) -> Block:
        self.n += 1
        height = fig.layout.height or figures.HEIGHT
        markup = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            # the tool bar would cover a small figure's title
            config={**PLOT_CONFIG, "displayModeBar": False} if small else PLOT_CONFIG,
            div_id=f"{self.section}-{self.n}",
            default_height=f"{height}px",
        )
        return Block("figure", html=markup, small=small)


def _note(text: str) -> Block:
    return Block("note", text=text)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return str(v)


def _table(df: pd.DataFrame, columns: list[str], title: str = "") -> Block:
    rows = [[_cell(v) for v in r] for r in df[columns].itertuples(index=False, name=None)]
    return Block("table", title=title, columns=columns, rows=rows)


def _href(target: str, out_dir: str) -> str:
    """A Data Docs location as a link that works from the page: http(s) as it is; a location on
    the page's file system (a local path or file: URI beside a local page, the same
    `hdfs://host` ...) relative to the page's folder; a local file beside a remote page as a
    file: URI; anything else as it is."""
    s = uris.scheme(target)
    if s in ("http", "https"):
        return target
    if s == "file":
        target = unquote(urlsplit(target).path)
    elif not s and not target.startswith("/"):
        return target  # relative already (or not a location)
    rel = uris.relative(out_dir, target)
    if rel is not None:
        return rel
    return Path(target).as_uri() if uris.is_local(target) else target


def _data_quality(r: RunReport, out_dir: str) -> Section:
    fig, blocks = _Figures("data-quality"), []
    if r.dq_days is None:
        blocks.append(_note(f"No data-quality trend: {r.notes.get('dq', 'no data')}."))
    else:
        blocks += [fig(figures.pass_rate(r.dq_days)), fig(figures.quarantined(r.dq_days))]
        if r.dq_reasons is not None:
            blocks.append(fig(figures.reasons(r.dq_reasons)))
        else:
            blocks.append(_note(f"No quarantine reasons: {r.notes.get('reasons', 'none')}."))
        docs = r.dq_days.dropna(subset=["data_docs"])
        links = [
            (_href(str(x.data_docs), out_dir), f"{x.table} {_cell(x.data_date)}")
            for x in docs.itertuples()
            if str(x.data_docs)
        ]
        if links:
            blocks.append(Block("links", title="GX Data Docs", links=links))
        else:
            blocks.append(_note("No GX Data Docs were recorded for these validate runs."))
        blocks.append(
            _table(
                r.dq_days,
                ["table", "data_date", "rows_in", "silver_rows", "quarantined", "pass_rate"],
                "Validate runs",
            )
        )
    return Section("data-quality", "Data quality", blocks)


def _profile(r: RunReport) -> Section:
    fig, blocks = _Figures("profile"), []
    if r.missing is not None:
        blocks.append(Block("text", text=f"Missing values: {r.missing_source}."))
        blocks.append(fig(figures.missing(r.missing)))
    else:
        blocks.append(_note(f"No missing-value profile: {r.notes.get('missing', 'no data')}."))
    if r.histograms is not None or r.categories is not None:
        blocks.append(
            Block("text", text=f"Distributions of the model's features: {r.distributions_source}.")
        )
        if r.histograms is not None:
            for feature, b in r.histograms.groupby("feature", sort=False):
                blocks.append(fig(figures.histogram(str(feature), b), small=True))
        if r.categories is not None:
            for feature, c in r.categories.groupby("feature", sort=False):
                blocks.append(fig(figures.categories(str(feature), c), small=True))
    else:
        blocks.append(_note(f"No distributions: {r.notes.get('distributions', 'no data')}."))
    if r.correlations is not None:
        blocks.append(Block("text", text=f"Correlation: {r.correlation_source}."))
        blocks.append(fig(figures.correlations(r.correlations, r.label)))
    else:
        blocks.append(
            _note(f"No correlations with the label: {r.notes.get('correlation', 'no data')}.")
        )
    return Section("profile", "Silver profile", blocks)


def _drift(r: RunReport) -> Section:
    fig, blocks = _Figures("drift"), []
    if r.drift is None:
        blocks.append(_note(f"No drift statistics: {r.notes.get('drift', 'no data')}."))
        return Section("drift", "Drift", blocks)
    d = r.drift
    threshold = (
        float(d["threshold"].dropna().iloc[0]) if d["threshold"].notna().any() else r.psi_threshold
    )
    drifted = d[(d["kind"] != "prediction") & d["drifted"].fillna(False).astype(bool)]
    blocks.append(
        Block(
            "text",
            text=f"{len(drifted)} of {int((d['kind'] != 'prediction').sum())} features drifted "
            f"(PSI over {threshold:g})"
            + (f": {', '.join(drifted['feature'])}." if len(drifted) else "."),
        )
    )
    blocks.append(fig(figures.psi_summary(d, threshold)))
    pred = d[d["kind"] == "prediction"]
    if len(pred):
        blocks.append(fig(figures.drift_histogram(pred.iloc[0])))
    else:
        blocks.append(_note(f"No prediction drift: {r.notes.get('prediction_drift', 'no row')}."))
    for _, row in d[d["kind"] != "prediction"].iterrows():
        blocks.append(fig(figures.drift_histogram(row), small=True))
    stats = [
        "feature",
        "kind",
        "psi",
        "ks",
        "wasserstein",
        "jensen_shannon",
        "chi2_p",
        "null_share_reference",
        "null_share_current",
        "rows_reference",
        "rows_current",
        "drifted",
    ]
    blocks.append(_table(d, stats, "Drift statistics"))
    return Section("drift", "Drift", blocks)


def _model(r: RunReport) -> Section:
    fig, blocks = _Figures("model"), []
    if r.matured_rows:
        blocks.append(
            Block(
                "text",
                text=f"{r.matured_rows} predictions with a matured label "
                f"(prediction dates up to {r.date}).",
            )
        )
        if r.task == "regression":
            if r.residuals is not None:
                blocks.append(fig(figures.residuals_vs_predicted(r.residuals)))
            if r.residual_hist is not None:
                blocks.append(fig(figures.residual_histogram(r.residual_hist)))
        else:
            if r.confusion is not None:
                blocks.append(fig(figures.confusion_matrix(r.confusion), small=True))
            if r.roc is not None:
                blocks.append(fig(figures.roc(r.roc, r.auc), small=True))
    else:
        blocks.append(_note(r.notes.get("model", "No matured labels yet.")))
    if r.quality is not None:
        blocks.append(fig(figures.quality_over_time(r.quality, r.metric)))
    else:
        blocks.append(_note(f"No metrics over time: {r.notes.get('quality', 'no data')}."))
    has_challenger = r.quality is not None and (r.quality["role"] == "challenger").any()
    if has_challenger:
        blocks.append(fig(figures.champion_vs_challenger(r.quality, r.metric)))
    if r.shadow is not None:
        what = "probability" if r.task == "classification" else "prediction"
        blocks.append(fig(figures.shadow_scatter(r.shadow, what)))
    if not has_challenger and r.shadow is None:
        blocks.append(
            _note(
                f"No champion vs challenger comparison: {r.notes.get('shadow', 'no challenger')}."
            )
        )
    if r.facts is not None and r.facts.weights:
        blocks.append(fig(figures.weights(r.facts.weights_kind, r.facts.weights)))
    elif r.facts is not None:
        blocks.append(
            _note(
                f"Model {r.facts.name} v{r.facts.version} logged no feature importances or coefficients."
            )
        )
    else:
        blocks.append(_note(f"No feature importances: {r.notes.get('facts', 'no model facts')}."))
    return Section("model", "Model", blocks)


def _decision(r: RunReport) -> Section:
    fig, blocks = _Figures("decision"), []
    d = r.decision or {}
    verdict = "RETRAIN RECOMMENDED" if d.get("retrain_recommended") else "no retrain"
    blocks.append(Block("text", title=verdict, text=str(d.get("reason", ""))))
    facts = [
        ("rule", d.get("rule")),
        ("in cooldown", d.get("in_cooldown")),
        ("last trained", d.get("last_trained")),
        ("model", f"{d.get('model_name')} v{d.get('model_version')}"),
        ("monitor run", d.get("run_id")),
    ]
    blocks.append(
        Block("table", title="Decision", columns=["", ""], rows=[[k, _cell(v)] for k, v in facts])
    )
    if r.evidence:
        blocks.append(Block("pre", title="Evidence", text=r.evidence))
    if r.decisions is not None:
        blocks.append(fig(figures.decision_history(r.decisions, r.psi_threshold)))
    else:
        blocks.append(_note("No decision history."))
    f = r.facts
    if f is not None:
        model = [
            ("model version", f"{f.name} v{f.version}"),
            ("MLflow run", f.run_id),
            ("git sha", f.git_sha or "(not tagged)"),
            (
                "training set",
                f"{f.training_table or f.training_path} @ Delta version {_cell(f.training_version)}",
            ),
            ("train run", f.train_run_id or "(not tagged)"),
        ]
        blocks.append(
            Block("table", title="Model lineage", columns=["", ""], rows=[[k, v] for k, v in model])
        )
    else:
        blocks.append(_note(f"No model lineage: {r.notes.get('facts', 'no model facts')}."))
    if r.lineage is not None:
        blocks.append(
            _table(
                r.lineage,
                ["job", "run_id", "status", "run_date", "finished_at", "delta_versions"],
                "Runs",
            )
        )
    else:
        blocks.append(_note(f"No runs: {r.notes.get('lineage', 'none')}."))
    return Section("decision", "Retrain decision and lineage", blocks)


def _online(r: RunReport) -> Section:
    """Online serving: traffic per model alias, champion vs challenger on matured labels, the
    served features' drift."""
    if r.online is None:
        return Section("online", "Online serving", [_note(f"{r.notes.get('online', '')}.")])
    o, fig = r.online, _Figures("online")
    traffic = o[o["section"] == "traffic"]
    blocks = [
        fig(figures.online_traffic(traffic)),
        _table(
            traffic,
            ["model_alias", "model_version", "requests", "rows", "mean_prediction"]
            + ["latency_p50_ms", "latency_p99_ms"],
            "Requests answered, by model (sticky split by entity key)",
        ),
    ]
    q = o[o["section"] == "quality"]
    if len(q):
        blocks.append(
            _table(
                q,
                ["model_alias", "model_version", "metric", "value", "matured_labels", "rows"],
                "Champion vs challenger on the labels matured since",
            )
        )
    else:
        blocks.append(_note("No served entity has a matured label yet."))
    d = o[o["section"] == "drift"]
    if len(d):
        blocks.append(
            _table(
                d,
                ["feature", "psi", "drifted", "rows"],
                f"Served features against the champion's reference (PSI over "
                f"{r.psi_threshold:g}: drifted)",
            )
        )
    return Section("online", "Online serving", blocks)


def sections(r: RunReport, out_dir: str) -> list[Section]:
    out = [_data_quality(r, out_dir), _profile(r), _drift(r), _model(r)]
    if r.serves:
        out.append(_online(r))
    return [*out, _decision(r)]


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("lakeloop.reports", "templates"),  # also from a --py-files zip
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(r: RunReport, out_dir: str) -> str:
    """The date's page; `out_dir` (the folder it is written to) places the relative links."""
    return (
        _env()
        .get_template("run_report.html.j2")
        .render(report=r, sections=sections(r, out_dir), plotly_js=PLOTLY_JS, index="index.html")
    )


def render_index(pipeline: str, rows: list[IndexRow], pages: set[str]) -> str:
    """The index across dates: a date links its page when `pages` (the names present in the
    folder) has it."""
    entries = [
        {
            "date": x.date.isoformat(),
            "href": page_name(x.date) if page_name(x.date) in pages else "",
            "recommended": x.recommended,
            "rule": x.rule,
            "in_cooldown": x.in_cooldown,
            "reason": x.reason,
            "drifted": x.drifted,
            "max_psi": _cell(x.max_psi),
        }
        for x in rows
    ]
    return _env().get_template("index.html.j2").render(pipeline=pipeline, entries=entries)


def _size(spark: SparkSession, uri: str) -> int | None:
    """The length of the file at `uri` on its Hadoop FileSystem; None when there is none."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    st = fs.getFileStatus(path)
    return int(st.getLen()) if st.isFile() else None


def ensure_plotly_js(spark: SparkSession, out_dir: str) -> str:
    """The plotly package's own plotly.min.js beside the pages (copied once; again when the
    package's differs in size)."""
    src = resources.files("plotly") / "package_data" / PLOTLY_JS
    dst = uris.join(out_dir, PLOTLY_JS)
    with resources.as_file(src) as local:
        if _size(spark, dst) != local.stat().st_size:
            storage.write_bytes(spark, dst, local.read_bytes())
            log.info("copied %s to %s", PLOTLY_JS, dst)
    return dst


@dataclass(frozen=True)
class Written:
    """Where the report went (URIs) and the page's size in bytes."""

    page: str
    index: str
    script: str
    page_bytes: int


def write(spark: SparkSession, r: RunReport, out_dir: str) -> Written:
    """The date's page, then the index (which links the pages present), and plotly.min.js,
    written into the folder `out_dir` (a URI) through the session's Hadoop FileSystem."""
    script = ensure_plotly_js(spark, out_dir)
    page = uris.join(out_dir, page_name(r.date))
    body = render_page(r, out_dir).encode("utf-8")
    storage.write_bytes(spark, page, body)
    index = uris.join(out_dir, "index.html")
    pages = set(storage.list_names(spark, out_dir))
    storage.write_text(spark, index, render_index(r.pipeline, r.index, pages))
    log.info("run report %s (%.0f KB), index %s", page, len(body) / 1024, index)
    return Written(page, index, script, len(body))
