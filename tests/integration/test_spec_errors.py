"""A spec that names a column the data does not have: every job exits 2 with one line naming
the spec key and the column, no traceback, and writes nothing for the date. A suite with row
rules only validates without calling GX."""

import datetime as dt
import re

from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.config import load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import build_training_set, ingest_files, predict, train, validate
from lakeloop.ml import tracking
from tests.conftest import ROOT, spec_variant
from tests.integration.test_train_predict import CLASSIFIER, _synthetic, ml_config

D1 = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)


def _main(job, p, spec_file, date, capsys) -> tuple[int, list[str]]:
    """Run the job's main() in this process (the session is the test session); return the
    exit code and the error lines it logged."""
    capsys.readouterr()
    args = ["--pipeline", str(spec_file), "--date", date.isoformat(), "--env", "test"]
    args += ["--set", f"lakehouse_root={p.root}"]
    args += ["--set", f"mlflow.tracking_uri={p.cfg.mlflow.tracking_uri}"]
    args += ["--set", f"mlflow.artifact_root={p.cfg.mlflow.artifact_root}"]
    code = job.main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if " ERROR " in line]


def _exists(spark, p, key) -> bool:
    return delta_io.version(spark, p.table_path(key)) is not None


def _two_listing_tables(bad_cleaning):
    """houses validating its listings into two silver tables; the second one's cleaning is
    `bad_cleaning` (the first is fine: nothing of it may be written either)."""

    def edit(d):
        listings = next(e for e in d["expectations"] if e["source"] == "bronze_listings")
        second = {
            **listings,
            "silver": "silver_listings_2",
            "quarantine": "quarantine_listings_2",
            "cleaning": bad_cleaning,
        }
        d["tables"].update(
            silver_listings_2="silver.houses_listings_2",
            quarantine_listings_2="quarantine.houses_listings_2",
        )
        d["expectations"] = [listings, second]

    return edit


def test_validate_unknown_cleaning_column_exits_2_and_writes_nothing(spark, cfg, tmp_path, capsys):
    bad = {"outliers": {"sqftt": {"method": "iqr", "k": 3.0, "action": "flag"}}}
    p, spec_file = spec_variant(cfg, tmp_path, _two_listing_tables(bad))
    gen.generate(p, start=D1, days=1, rows_per_day=60, produce=False)
    ingest_files.run(spark, p, D1)
    code, errors = _main(validate, p, spec_file, D1, capsys)
    assert code == 2 and len(errors) == 1, errors
    assert "expectations[1].cleaning.outliers.sqftt: no such column" in errors[0]
    for key in ("silver_listings", "quarantine_listings", "silver_listings_2"):
        assert not _exists(spark, p, key), key
    failed = runlog.runs(spark, p).where("job = 'validate'").first()
    assert failed.status == "failed" and "sqftt" in failed.error


def test_a_suite_with_row_rules_only_validates_without_gx(spark, tmp_path):
    exp = tmp_path / "expectations"
    (exp / "houses").mkdir(parents=True)
    (exp / "houses/rows_only.json").write_text(
        '{"name": "rows_only", "meta": {"version": "1"}, "expectations": ['
        '{"type": "expect_column_values_to_be_null", "kwargs": {"column": "_error"}},'
        '{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "listing_id"}}]}'
    )
    overrides = {
        "lakehouse_root": str(tmp_path / "lakehouse"),
        "expectations_dir": str(exp),
        "quality": {"data_docs": True},  # off in conf/test
    }
    cfg = load_config("test", overrides, project_root=ROOT)

    def edit(d):
        listings = next(e for e in d["expectations"] if e["source"] == "bronze_listings")
        d["expectations"] = [{**listings, "suite": "houses/rows_only.json"}]

    p, _ = spec_variant(cfg, tmp_path, edit)
    gen.generate(p, start=D1, days=1, rows_per_day=80, malformed=0.05, produce=False)
    ingest_files.run(spark, p, D1)
    rec = validate.run(spark, p, D1)
    silver = rec.output_counts["silver_listings"]
    quarantined = rec.output_counts["quarantine_listings"]
    assert silver + quarantined == rec.input_counts["bronze_listings"] == 80 and quarantined > 0
    # no table-level expectation, yet Data Docs: they show the row rules' results
    assert rec.details["bronze_listings.data_docs"].endswith("index.html")
    summary = open(rec.details["summary"]).read()
    assert "table-level expectations: none in the suite (the row rules' results" in summary
    assert f"GX Data Docs: {rec.details['bronze_listings.data_docs']}" in summary


def test_training_set_with_an_unknown_label_column_exits_2(spark, cfg, tmp_path, capsys):
    p, spec_file = spec_variant(cfg, tmp_path, lambda d: d["label"].update(column="sale_prize"))
    spark.createDataFrame(
        [("S1", "L1", dt.datetime(2026, 1, 5), 250000.0)],
        "sale_id string, listing_id string, sold_at timestamp, sale_price double",
    ).write.format("delta").save(p.table_path("silver_sales"))
    spark.createDataFrame(
        [("L1", dt.datetime(2026, 1, 1), D1, 1200)],
        "listing_id string, feature_ts timestamp, feature_date date, sqft int",
    ).write.format("delta").save(p.table_path("features"))
    code, errors = _main(build_training_set, p, spec_file, dt.date(2026, 1, 31), capsys)
    assert code == 2 and len(errors) == 1, errors
    assert "label.column (sale_prize): no such column" in errors[0]
    assert not _exists(spark, p, "training_set")


def test_unknown_model_feature_exits_2_in_train_and_predict(spark, tmp_path, capsys):
    p, _ = spec_variant(ml_config(tmp_path), tmp_path, lambda d: d.update(model=CLASSIFIER))
    _synthetic(spark, p)
    train.run(spark, p, DAY)  # a champion trained on the right spec
    client = tracking.configure(p.cfg)
    versions = tracking.version_count(client, CLASSIFIER["name"])
    typo = {**CLASSIFIER, "features": {**CLASSIFIER["features"], "numeric": ["sqft", "bedroomz"]}}
    q, spec_file = spec_variant(p.cfg, tmp_path, lambda d: d.update(model=typo))

    code, errors = _main(train, q, spec_file, DAY, capsys)
    assert code == 2 and len(errors) == 1, errors
    assert re.search(
        r"model.features.numeric \(bedroomz\): no such column in the training", errors[0]
    )
    assert tracking.version_count(client, CLASSIFIER["name"]) == versions  # nothing registered

    code, errors = _main(predict, q, spec_file, DAY, capsys)
    assert code == 2 and len(errors) == 1, errors
    assert "model.features.numeric (bedroomz): no such column in the feature table" in errors[0]
    assert not _exists(spark, q, "predictions")
    runs = delta_io.read(spark, q.table_path("run_log")).where(F.col("status") == "failed")
    assert {r.job for r in runs.collect()} == {"train", "predict"}
