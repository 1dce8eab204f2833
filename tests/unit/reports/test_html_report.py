"""The HTML run report: every section with a plot, for a regression (houses) and a
classification (deliveries) pipeline, from tiny Delta tables with the metrics tables' schemas;
offline (no http(s) script or stylesheet); the index across dates; the failure paths."""

from __future__ import annotations

import datetime as dt
import math
import random
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T
from sklearn.metrics import roc_auc_score

from lakeloop import cli, uris
from lakeloop.config import load_config
from lakeloop.jobs import report as report_job
from lakeloop.jobs.common import JobError
from lakeloop.monitoring import tables as mt
from lakeloop.reports import html, run_report
from lakeloop.spec import Pipeline, load_pipeline
from tests.conftest import ROOT

D1, D2 = dt.date(2026, 1, 9), dt.date(2026, 1, 10)
SECTIONS = ("data-quality", "profile", "drift", "model", "decision")
# houses has `serving:`: its page shows the online server's day before the decision
SERVING_SECTIONS = ("data-quality", "profile", "drift", "model", "online", "decision")
N = 80  # entities per date


class Page(HTMLParser):
    """The parts of a page the tests look at: sections with their figure count, external
    script/stylesheet references, links, text."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, int] = {}
        self.notes: dict[str, list[str]] = {}
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._section: str | None = None
        self._in_note = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = 0
            self.notes[self._section] = []
        elif tag == "div" and "plotly-graph-div" in (a.get("class") or "") and self._section:
            self.sections[self._section] += 1
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheets.append(a.get("href", ""))
        elif tag == "a":
            self.links.append(a.get("href", ""))
        self._in_note = tag == "p" and a.get("class") == "note"

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        if tag == "p":
            self._in_note = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_note and self._section:
            self.notes[self._section].append(data)


def _pipeline(tmp: Path, name: str) -> Pipeline:
    cfg = load_config("test", {"lakehouse_root": str(tmp / "lakehouse")}, project_root=ROOT)
    return load_pipeline(cfg, name)


def _save(spark, rows, schema, path: str) -> None:
    spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(path)


def _value(rnd: random.Random, c: str):
    return rnd.random() < 0.5 if c == "has_garage" else round(rnd.gauss(100, 30), 2)


def _key_fields(p: Pipeline) -> list[T.StructField]:
    return [T.StructField(k, T.StringType()) for k in p.spec.entity_keys]


def _keys(p: Pipeline, i: int) -> list[str]:
    return [f"{k}{i}" for k in p.spec.entity_keys]


def _categorical(p: Pipeline) -> list[str]:
    """The model's categorical features that are not entity keys (deliveries: region is)."""
    return [c for c in p.spec.model.features.categorical if c not in p.spec.entity_keys]


def _features_schema(p: Pipeline, *extra: T.StructField) -> T.StructType:
    m = p.spec.model.features
    return T.StructType(
        [
            *_key_fields(p),
            *[
                T.StructField(c, T.BooleanType() if c == "has_garage" else T.DoubleType())
                for c in m.numeric
            ],
            *[T.StructField(c, T.StringType()) for c in _categorical(p)],
            *extra,
        ]
    )


def _features_row(p: Pipeline, rnd: random.Random, i: int) -> list:
    m = p.spec.model.features
    return [
        *_keys(p, i),
        *[_value(rnd, c) for c in m.numeric],
        *[rnd.choice(["a", "b", "c", None]) for _ in _categorical(p)],
    ]


def _predictions_schema(p: Pipeline) -> T.StructType:
    cls = p.spec.model.task == "classification"
    d = T.DoubleType()
    return T.StructType(
        [
            *_key_fields(p),
            T.StructField("feature_ts", T.TimestampType()),
            T.StructField("prediction_date", T.DateType()),
            T.StructField("prediction", d),
            *([T.StructField("probability", d)] if cls else []),
            T.StructField("model_name", T.StringType()),
            T.StructField("model_version", T.IntegerType()),
            T.StructField("challenger_prediction", d),
            *([T.StructField("challenger_probability", d)] if cls else []),
            T.StructField("challenger_version", T.IntegerType()),
        ]
    )


def _prediction(p: Pipeline, rnd: random.Random, i: int, date: dt.date) -> tuple[list, float]:
    """A prediction row and its (later matured) label."""
    name, cls = p.spec.model.name, p.spec.model.task == "classification"
    ts = dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC)
    if cls:
        prob = rnd.random()
        label = float(rnd.random() < prob)
        cprob = min(1.0, max(0.0, prob + rnd.gauss(0, 0.1)))
        row = [
            *_keys(p, i),
            ts,
            date,
            float(prob > 0.5),
            prob,
            name,
            2,
            float(cprob > 0.5),
            cprob,
            3,
        ]
    else:
        pred = rnd.uniform(200_000, 600_000)
        label = pred + rnd.gauss(0, 20_000)
        row = [*_keys(p, i), ts, date, pred, name, 2, pred * 1.02, 3]
    return row, label


def _lake(spark, p: Pipeline, full: bool) -> tuple[Pipeline, list[tuple[list, float]]]:
    """Tiny tables of one pipeline for D1 and D2: four metrics tables (D2's drift with a
    drifted feature) and the features; `full`: also silver, predictions and a training set."""
    rnd = random.Random(7)
    spec, m = p.spec, p.spec.model
    cls = m.task == "classification"
    name = m.name
    # metrics_decisions: D1 no retrain, D2 retrain on drift
    _save(
        spark,
        [
            (D1, "mon1", name, 2, False, "none", False, "nothing fired", '{"drift": {}}', D1),
            (
                D2,
                "mon2",
                name,
                2,
                True,
                "drift",
                False,
                "sqft drifted in 2 of 3 runs",
                '{"drift": {"psi": 0.41, "runs": 2}}',
                D1,
            ),
        ],
        mt.DECISIONS_SCHEMA,
        p.table_path(mt.DECISIONS),
    )
    # metrics_drift: every watched feature + the prediction row, for both dates
    drift = []
    feats = [(c, "numeric") for c in m.features.numeric] + [
        (c, "categorical") for c in m.features.categorical
    ]
    for date, run in ((D1, "mon1"), (D2, "mon2")):
        for j, (f, kind) in enumerate([*feats, ("prediction", "prediction")]):
            shifted = date == D2 and j == 0
            ref = [100, 100, 100, 100, 0, 0]
            cur = [20, 60, 120, 200, 0, 0] if shifted else [95, 105, 100, 100, 0, 0]
            psi = 0.41 if shifted else 0.01
            drift.append(
                (
                    date,
                    run,
                    name,
                    2,
                    f,
                    kind,
                    400,
                    400,
                    psi,
                    0.2,
                    0.1,
                    None,
                    None,
                    0.0,
                    0.0,
                    0.2,
                    psi > 0.2,
                    ["(-inf, 1)", "[1, 2)", "[2, 3)", "[3, inf)", "null", "NaN"],
                    ref,
                    cur,
                )
            )
    _save(spark, drift, mt.DRIFT_SCHEMA, p.table_path(mt.DRIFT))
    # metrics_quality: D2's run, champion v2 + challenger v3 on two prediction dates
    metric = m.promotion.metric
    quality = [
        (
            D2,
            "mon2",
            name,
            v,
            role,
            pd_,
            metric,
            val,
            0.8 if cls else 30000.0,
            N,
            N // 2,
            "silver.x",
            4,
        )
        for v, role, off in ((2, "champion", 0.0), (3, "challenger", 0.01))
        for pd_, val in (
            (D1, (0.75 if cls else 31000.0) + off),
            (D2, (0.7 if cls else 33000.0) + off),
        )
    ]
    _save(spark, quality, mt.QUALITY_SCHEMA, p.table_path(mt.QUALITY))
    # metrics_data_quality: the trend of D2's run, one silver table
    silver_key = spec.features.source
    docs = str(p.local_root / "data_docs" / "index.html")
    dq = [
        (
            D2,
            "mon2",
            name,
            2,
            spec.table(silver_key),
            d,
            100,
            97,
            3,
            0.97,
            {"sqft_positive": 2, "zipcode_not_null": 1},
            f"val{d.day}",
            docs,
        )
        for d in (D1, D2)
    ]
    _save(spark, dq, mt.DATA_QUALITY_SCHEMA, p.table_path(mt.DATA_QUALITY))
    if spec.serving is not None:  # metrics_online: D2's requests, split champion/challenger
        nulls = (None,) * 7
        online = [
            (D2, "mon2", name, "traffic", "champion", 2, None, None, 40, 90, 1.5, 0.4, 2.1)
            + nulls[:4],
            (D2, "mon2", name, "traffic", "challenger", 3, None, None, 9, 21, 1.6, 0.4, 2.5)
            + nulls[:4],
            (D2, "mon2", name, "traffic", "(rejected)", None, None, None, 3, 4) + nulls[:7],
            (D2, "mon2", name, "quality", "champion", 2, None, metric, None, 90)
            + nulls[:5]
            + (31000.0, 12),
            (D2, "mon2", name, "drift", None, None, "sqft", None, None, 111)
            + nulls[:3]
            + (0.05, False, None, None),
        ]
        _save(spark, online, mt.ONLINE_SCHEMA, p.table_path(mt.ONLINE))
    # silver (rows ingested on D2, some missing values), features of D2
    silver_schema = T.StructType(
        [
            *_key_fields(p),
            T.StructField("size", T.DoubleType()),
            T.StructField("kind", T.StringType()),
            T.StructField("_ingest_date", T.DateType()),
        ]
    )
    silver = [
        [*_keys(p, i), None if i % 4 == 0 else float(i), "x" if i % 2 else None, D2]
        for i in range(N)
    ]
    if full:
        _save(spark, silver, silver_schema, p.table_path(silver_key))
    fschema = _features_schema(p, T.StructField("feature_date", T.DateType()))
    _save(
        spark,
        [[*_features_row(p, rnd, i), D2] for i in range(N)],
        fschema,
        p.table_path(spec.features.table),
    )
    # predictions of D1 and D2 (challenger in shadow), their labels for the matured fake
    scored = [_prediction(p, rnd, i, d) for d in (D1, D2) for i in range(N)]
    if not full:
        return p, scored
    _save(spark, [r for r, _ in scored], _predictions_schema(p), p.table_path(m.predictions))
    # the champion's training set (for the correlations)
    label = spec.model_label
    tschema = _features_schema(p, T.StructField(label, T.DoubleType()))
    training = []
    for i in range(N):
        row = _features_row(p, rnd, i)
        training.append([*row, float(rnd.random() < 0.5) if cls else 1000.0 * i])
    _save(spark, training, tschema, str(p.local_root / "training" / "set"))
    return p, scored


def _facts(p: Pipeline) -> run_report.ModelFacts:
    return run_report.ModelFacts(
        name=p.spec.model.name,
        version=2,
        run_id="mlflowrun2",
        git_sha="abc123",
        train_run_id="trainrun",
        training_table=p.spec.table(p.spec.label.table),
        training_path=str(p.local_root / "training" / "set"),
        training_version=0,
        weights_kind="coefficient",
        weights={"sqft": 120.5, "zipcode=98105": -3000.0, "bedrooms": 10.0},
    )


def _matured(scored):
    def fake(spark, pipeline, date):
        cls = pipeline.spec.model.task == "classification"
        schema = T.StructType(
            [*_predictions_schema(pipeline).fields, T.StructField("label", T.DoubleType())]
        )
        rows = [[*r, label] for r, label in scored if r[len(pipeline.spec.entity_keys) + 1] <= date]
        assert cls == ("probability" in schema.fieldNames())
        return spark.createDataFrame(rows, schema)

    return fake


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory):
    return {
        name: _lake(spark, _pipeline(tmp_path_factory.mktemp(name), name), name == "houses")
        for name in ("houses", "deliveries")
    }


def _assert_offline_page(page: Page) -> None:
    remote = [u for u in page.scripts + page.stylesheets if "://" in u or u.startswith("//")]
    assert remote == []
    assert page.scripts == [html.PLOTLY_JS]


def test_regression_report_job_every_section_has_a_plot(spark, lakes, monkeypatch, capsys):
    p, scored = lakes["houses"]
    monkeypatch.setattr(run_report, "registry_facts", lambda pipeline, version: _facts(p))
    monkeypatch.setattr(run_report, "_matured", _matured(scored))
    rec = report_job.run(spark, p, D2)
    report_job.report(rec)
    assert html.output_dir(p) == f"{p.root}/reports/houses/html"
    out = uris.local_path(html.output_dir(p))
    page_path = Path(rec.details["report"])
    assert page_path == out / "2026-01-10.html" and page_path.is_file()
    assert str(page_path) in capsys.readouterr().out
    assert (out / html.PLOTLY_JS).stat().st_size > 3_000_000  # the one local copy
    text = page_path.read_text()
    page = Page(text)
    assert tuple(page.sections) == SERVING_SECTIONS
    assert {s: n for s, n in page.sections.items() if n == 0} == {}, page.notes
    _assert_offline_page(page)
    # the online section: records per model, champion vs challenger, served-feature drift
    assert "Online records by model" in text and "challenger v3" in text
    assert "Champion vs challenger on the labels matured since" in text
    words = " ".join(page.text)
    assert "sqft: PSI 0.4100 \\u2014 DRIFTED" in text
    assert "1 of 11 features drifted (PSI over 0.2): sqft." in words
    assert "RETRAIN RECOMMENDED" in words and '"psi": 0.41' in words
    assert "abc123" in words and "mlflowrun2" in words
    assert "Residual vs predicted (160 sampled matured predictions)" in text
    assert "Feature coefficients (top 3)" in text
    assert "Correlation with sale_price" in text
    # the Data Docs link is relative to the page
    assert "../../../data_docs/index.html" in page.links
    # the report is a run of the run log, its path recorded there
    logged = report_job.runlog.runs(spark, p).where(f"run_id = '{rec.run_id}'").first().asDict()
    assert logged["status"] == "succeeded" and logged["details"]["report"] == str(page_path)
    # the index: D2 linked, D1 listed with the command that builds it; then D1 built too
    index = Page((out / "index.html").read_text())
    assert index.links == ["2026-01-10.html"]
    assert "lakeloop report --pipeline houses --date 2026-01-09" in " ".join(index.text)
    print(f"page {page_path.stat().st_size / 1024:.1f} KB")


def test_classification_report_without_champion_says_so(spark, lakes):
    p, scored = lakes["deliveries"]
    no_champion = (
        "model deliveries_late has no `champion` in the registry (run `lakeloop run train`)"
    )
    r = run_report.collect(
        spark, p, D2, facts=lambda pipeline, v: no_champion, matured=_matured(scored)
    )
    assert r.matured_rows == 2 * N
    # the ROC from score buckets agrees with scikit-learn's exact AUC on the same rows
    k = len(p.spec.entity_keys)  # keys, feature_ts, prediction_date, prediction, probability
    exact = roc_auc_score([lab for _, lab in scored], [row[k + 3] for row, _ in scored])
    assert r.auc == pytest.approx(exact, abs=0.01)
    written = html.write(spark, r, html.output_dir(p))
    text = Path(written.page).read_text()
    assert written.page_bytes == len(text.encode())
    page = Page(text)
    assert tuple(page.sections) == SECTIONS
    assert {s: n for s, n in page.sections.items() if n == 0} == {}, page.notes
    _assert_offline_page(page)
    assert "Confusion matrix" in text and "ROC (AUC" in text
    # no champion: the correlation, importances and lineage parts say so plainly
    assert any(no_champion in n for n in page.notes["profile"])
    assert any(no_champion in n for n in page.notes["model"])
    assert any("No model lineage" in n for n in page.notes["decision"])
    print(f"page {written.page_bytes / 1024:.1f} KB")


def test_no_matured_labels_says_so_instead_of_a_plot(spark, lakes):
    p, _ = lakes["deliveries"]
    r = run_report.RunReport("deliveries", D2, "classification", "m", 0.2, "auc", "now")
    run_report.collect_model(spark, p, D2, r, _matured([]))
    assert r.matured_rows == 0 and r.confusion is None and r.roc is None
    model = html._model(r)
    notes = [b.text for b in model.blocks if b.kind == "note"]
    assert any("no label has matured yet for the predictions of" in n for n in notes), notes
    assert "predictions.deliveries_orders does not exist yet" in r.notes["shadow"]
    assert not any("Confusion" in b.html or "ROC" in b.html for b in model.blocks)


def test_missing_tables_and_unknown_date_name_what_to_run(spark, tmp_path, lakes):
    empty = _pipeline(tmp_path, "houses")
    with pytest.raises(
        JobError,
        match=r"metrics.houses_decisions does not exist .*lakeloop run monitor --pipeline houses --date 2026-01-10",
    ):
        run_report.collect(spark, empty, D2)
    with pytest.raises(JobError, match=r"no decision yet .*lakeloop run monitor"):
        run_report.latest_date(spark, empty)
    p, _ = lakes["houses"]
    with pytest.raises(
        JobError,
        match=r"no decision for 2026-02-01 \(latest dates: 2026-01-10, 2026-01-09\): run `lakeloop run monitor --pipeline houses --date 2026-02-01`",
    ):
        run_report.collect(spark, p, dt.date(2026, 2, 1))
    assert run_report.latest_date(spark, p) == D2
    # the command line: exit 1 and the reason, nothing written
    args = [
        "report",
        "--pipeline",
        "houses",
        "--env",
        "test",
        "--set",
        f"lakehouse_root={empty.root}",
    ]
    assert cli.main(args) == 1
    assert not uris.local_path(html.output_dir(empty)).exists()


def test_histogram_and_correlation_aggregates_match_numpy(spark):
    rnd = np.random.default_rng(3)
    x = rnd.normal(10, 2, 500)
    y = 3 * x + rnd.normal(0, 1, 500)
    rows = [(float(a), float(b)) for a, b in zip(x, y, strict=True)] + [
        (None, 1.0),
        (float("nan"), 2.0),
    ]
    df = spark.createDataFrame(rows, "x double, y double")
    ranges = {r.feature: (r.lo, r.hi) for r in run_report.value_ranges(df, ["x"]).collect()}
    assert ranges["x"] == pytest.approx((x.min(), x.max()))
    counts = run_report.with_edges(run_report.bucket_counts(df, ranges, 10).toPandas(), ranges, 10)
    expected, _ = np.histogram(x, bins=10, range=ranges["x"])
    assert counts["rows"].tolist() == expected.tolist()
    corr = run_report.correlations(df, ["x"], "y").first()
    assert corr["correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    assert corr["rows"] == 500
    shares = {
        r.column: r.missing_share for r in run_report.missing_shares(df, ["x", "y"]).collect()
    }
    assert shares == {"x": pytest.approx(2 / 502), "y": 0.0}


def test_roc_curve_from_buckets():
    b = pd.DataFrame({"bucket": [10, 50, 90], "positives": [0, 1, 3], "rows": [4, 2, 3]})
    roc, auc = run_report.roc_curve(b)
    assert roc[["fpr", "tpr"]].values.tolist()[-1] == [1.0, 1.0]
    scores = [0.1] * 4 + [0.5] * 2 + [0.9] * 3
    labels = [0] * 4 + [1, 0] + [1, 1, 1]
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    _, one_class = run_report.roc_curve(b.assign(positives=b["rows"]))
    assert math.isnan(one_class)


@pytest.mark.parametrize(
    ("target", "out_dir", "href"),
    [
        # local: relative to the page's folder, whether either side is a path or a file: URI
        ("/lake/reports/h/validate/d/x/data_docs/index.html", "/lake/reports/h/html", None),
        ("file:///lake/reports/h/validate/d/x/data_docs/index.html", "/lake/reports/h/html", None),
        ("/lake/reports/h/validate/d/x/data_docs/index.html", "file:///lake/reports/h/html", None),
        ("file:///lake/a%20b/index.html", "file:///lake/reports/h/html", "../../../a b/index.html"),
        # the same HDFS: relative; another name node or scheme: the location as it is
        (
            "hdfs://nn:9820/lake/reports/h/validate/d/x/data_docs/index.html",
            "hdfs://nn:9820/lake/reports/h/html",
            None,
        ),
        ("hdfs://other:9820/lake/d/index.html", "hdfs://nn:9820/lake/reports/h/html", "="),
        ("s3a://bucket/lake/d/index.html", "hdfs://nn:9820/lake/reports/h/html", "="),
        # a page on HDFS pointing at the driver's disk: a file: URI, never a mangled path
        ("/lake/d/index.html", "hdfs://nn:9820/lake/reports/h/html", "file:///lake/d/index.html"),
        ("https://docs.example.com/x/index.html", "hdfs://nn:9820/lake/reports/h/html", "="),
        ("data_docs/index.html", "/lake/reports/h/html", "="),
    ],
)
def test_data_docs_link_is_relative_on_the_same_file_system(target, out_dir, href):
    expected = {None: "../validate/d/x/data_docs/index.html", "=": target}.get(href, href)
    assert html._href(target, out_dir) == expected


def test_index_links_only_the_pages_present():
    rows = [
        run_report.IndexRow(D2, True, "drift", False, "sqft drifted", 1, 0.41),
        run_report.IndexRow(D1, False, "none", False, "nothing fired", 0, 0.01),
    ]
    text = html.render_index("houses", rows, {"2026-01-10.html", "index.html"})
    index = Page(text)
    assert index.links == ["2026-01-10.html"]
    assert "lakeloop report --pipeline houses --date 2026-01-09" in " ".join(index.text)
