"""The Markdown reports (reports/markdown.py + templates/*.md.j2): the exact text of the
data-quality summary, the model report and the ingest report from small Python values, and a
missing value failing the render instead of leaving a blank."""

import datetime as dt
from pathlib import Path

import jinja2
import pytest
from pyspark.sql import Row

from lakeloop import runlog
from lakeloop.jobs.validate import CHANGES, TableSummary
from lakeloop.ml import pipeline as mlp
from lakeloop.ml import tracking
from lakeloop.ml.gate import decide
from lakeloop.ml.model_log import TrainingResult
from lakeloop.quality.gx_runner import ExpectationOutcome, TableValidation
from lakeloop.reports import markdown

D = dt.date(2026, 3, 1)


def test_data_quality_summary_lists_rules_moves_flags_and_gx_outcomes(houses):
    listings = TableSummary(
        "bronze_listings",
        100,
        90,
        10,
        [("price_positive", 6), ("sqft_range", 3), ("zip", 1)],
        TableValidation("s", True, [], None),
        flags={"imputed_sqft": 4, "a_flag": 1},
        examples={"price_positive": ["row 3 listing_id=7 value '-1'"]},
        moved={"2026-01-02": {"to_silver": 1, "to_quarantine": 2}},
        status="written",
    )
    sales = TableSummary(
        "bronze_sales",
        0,
        0,
        0,
        [],
        TableValidation(
            "t",
            False,
            [
                ExpectationOutcome("expect_a", {"min_value": 1}, False, True, "0"),
                ExpectationOutcome("expect_b", {}, True, False, None),
            ],
            Path("/docs/index.html"),
        ),
    )
    text = markdown.data_quality_summary(houses, D, [listings, sales], top_rules=2, changes=CHANGES)
    assert text == (
        "# Data quality: houses on 2026-03-01\n"
        "\n"
        "## bronze.houses_listings\n"
        "\n"
        "- written\n"
        "- bronze rows: 100; silver: 90; quarantine: 10; pass rate: 90.00%\n"
        "- top failing rules: price_positive (6), sqft_range (3)\n"
        "  - price_positive: row 3 listing_id=7 value '-1'\n"
        "- rows of other dates (cross-date de-duplication): 2026-01-02: 2 moved to quarantine "
        "(superseded by a later row), 1 back in silver (the row that superseded it went)\n"
        "- flags on silver rows: a_flag (1), imputed_sqft (4)\n"
        # no Data Docs were rendered for it (quality.data_docs off): no pointer to them
        "- table-level expectations: none in the suite\n"
        "\n"
        "## bronze.houses_sales\n"
        "\n"
        "- evaluated\n"
        "- bronze rows: 0; silver: 0; quarantine: 0; pass rate: 0.00%\n"
        "- FAIL (blocking): expect_a {'min_value': 1} observed 0\n"
        "- pass: expect_b {} observed None\n"
        "- GX Data Docs: /docs/index.html\n"
    )
    assert markdown.data_quality_summary(houses, D, [], top_rules=2, changes=CHANGES) == (
        "# Data quality: houses on 2026-03-01\n"
    )


def test_moved_text_sorts_dates_and_changes_and_refuses_an_unknown_change():
    moved = {"2026-01-02": {"to_silver": 1}, "2026-01-01": {"new_winner": 3, "to_quarantine": 2}}
    assert markdown.moved_text(moved, CHANGES) == (
        "2026-01-01: 3 still superseded, now by a row of another date, 2 moved to quarantine "
        "(superseded by a later row); 2026-01-02: 1 back in silver (the row that superseded "
        "it went)"
    )
    with pytest.raises(KeyError, match="to_nowhere"):
        markdown.moved_text({"2026-01-01": {"to_nowhere": 1}}, CHANGES)


def _result(houses, weights) -> tuple[runlog.RunRecord, TrainingResult]:
    m = houses.spec.model
    good = {"rmse": 1.5, "mae": 1.5, "r2": 0.96}
    base = {"rmse": 30.0, "mae": 30.0, "r2": 0.5}
    champion = tracking.ModelRef(m.name, 3, "r" * 32)
    decision = decide(m, good, mlp.Baseline("training mean", 123.456), base, champion, base)
    rec = runlog.RunRecord(job="train", pipeline="houses", run_date=D, env="test", run_id="abc")
    rec.output_counts.update(train_rows=100, test_rows=20, rows_without_features=3)
    result = TrainingResult(
        model=None,
        cv_results=[({}, 1.23456789), ({"regParam": 0.1}, 0.987654321)],
        weights=weights,
        metrics=good,
        decision=decision,
        lineage={
            tracking.TAG_TABLE: "training.houses_sales",
            tracking.TAG_PATH: "/lake/training/houses_sales",
            tracking.TAG_VERSION: "4",
            tracking.TAG_ROWS: "120",
        },
        window=(dt.date(2026, 2, 20), dt.date(2026, 2, 26)),
    )
    return rec, result


def test_model_report_has_the_decision_scores_tuning_weights_and_lineage(houses):
    weights = ("importance", {f"f{i}": 1 / (i + 1) for i in range(12)})
    rec, result = _result(houses, weights)
    ref = tracking.ModelRef("houses_price", 5, "f" * 32)
    text = markdown.model_report(houses, D, rec, ref, result)
    lines = text.splitlines()
    assert lines[0] == "# Model report: houses_price v5 (houses, 2026-03-01)"
    assert "- decision: **promoted to champion**: meets the thresholds" in text
    assert (
        "- naive baseline: training mean (predicts 123.456 for every row); rmse 30, beaten by "
        "this model's 1.5 (promotion.baseline_margin 0.0%)"
    ) in lines
    assert "- champion before: v3: rmse 30 on the same window" in lines
    assert any(x.startswith("- **champion demoted**: champion v3 no longer passes") for x in lines)
    assert (
        "- label: sale_price = sale_price from silver.houses_sales (label events); null "
        "labels left out (label.on_null: error): not known"
    ) in lines
    i = lines.index("## Test metrics")
    assert lines[i + 2 : i + 7] == [
        "| metric | this model | naive baseline (training mean) | champion v3 | threshold |",
        "|---|---|---|---|---|",
        "| rmse | 1.5 | 30 | 30 | max 40000 |",
        "| mae | 1.5 | 30 | 30 |  |",
        "| r2 | 0.96 | 0.5 | 0.5 | min 0.95 |",
    ]
    assert '| {"regParam": 0.1} | 0.987654 |' in lines and "| (defaults) | 1.23457 |" in lines
    assert "## Feature importances, top 10" in lines
    assert "| f9 | 0.1 |" in lines and "| f10 | 0.09091 |" not in lines  # the top 10 only
    assert text.endswith(
        "## Lineage\n\n"
        "- training set: training.houses_sales version 4 (120 rows) at /lake/training/houses_sales\n"
        "- rebuild it: `lakeloop training-set --pipeline houses --as-of 5`\n"
        f"- spec hash {houses.spec_hash()}, lakeloop run abc\n"
    )
    _, plain = _result(houses, ("coefficient", {}))  # no weights: no section
    assert "## Coefficients" not in markdown.model_report(houses, D, rec, ref, plain)


def test_model_report_refuses_a_missing_count_instead_of_a_blank(houses):
    rec, result = _result(houses, ("importance", {}))
    del rec.output_counts["test_rows"]
    ref = tracking.ModelRef("houses_price", 5, "f" * 32)
    with pytest.raises(jinja2.UndefinedError, match="test_rows"):
        markdown.model_report(houses, D, rec, ref, result)


def test_ingest_report_tables_and_latest_runs(houses):
    counts = {"bronze_listings": {"rows": 10, "malformed": 2}, "run_log": {"rows": 5}}
    generated = dict(
        days=3,
        start=dt.date(2026, 1, 1),
        listings=300,
        malformed_csv=2,
        malformed_json=1,
        sales=40,
        bad_messages=4,
    )
    runs = [
        Row(
            run_id="0123456789abcdef",
            job="validate",
            run_date=D,
            status="succeeded",
            duration_s=12.345,
            output_counts={"b": 2, "a": 1},
            error=None,
        ),
        Row(
            run_id="fedcba98",
            job="train",
            run_date=None,
            status="failed",
            duration_s=0.04,
            output_counts=None,
            error="boom",
        ),
    ]
    text = markdown.ingest_report(houses, counts, generated, runs)
    assert text.startswith(
        "# lakeloop ingest report: houses\n\nGenerated 3 day(s) from 2026-01-01: 300 listings "
        "(2 malformed CSV, 1 malformed JSON), 40 sale events (4 not parsable).\n"
    )
    lines = text.splitlines()
    listings, log = houses.table_path("bronze_listings"), houses.table_path("run_log")
    assert f"| bronze.houses_listings | {listings} | 10 | 2 |" in lines
    assert f"| ops.run_log | {log} | 5 |  |" in lines
    assert lines[-2:] == [
        "| 01234567 | validate | 2026-03-01 | succeeded | 12.3 | a=1, b=2 |  |",
        "| fedcba98 | train | None | failed | 0.0 |  | boom |",
    ]
