"""ingest_files on temp Delta tables with generated files (malformed rows included)."""

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_files
from lakeloop.jobs.common import JobError

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def _manifest(pipeline, day):
    path = pipeline.root / "landing/houses/_manifests" / f"date={day.isoformat()}.json"
    return json.loads(path.read_text())


@pytest.fixture
def landed(houses):
    gen.generate(houses, start=D1, days=2, rows_per_day=300, malformed=0.03, produce=False)
    return houses


def test_every_row_kept_and_malformed_rows_captured(spark, landed):
    rec = ingest_files.run(spark, landed, D1)
    m = _manifest(landed, D1)
    bronze = delta_io.read(spark, landed.table_path("bronze_listings")).where(
        F.col("_ingest_date") == D1
    )
    assert bronze.count() == m["listings"] == 300
    by_fmt = {
        r["_source_format"]: r
        for r in bronze.groupBy("_source_format")
        .agg(F.count(F.lit(1)).alias("n"), F.count("_error").alias("bad"))
        .collect()
    }
    assert by_fmt["csv"]["n"] == m["csv_records"] and by_fmt["csv"]["bad"] == m["malformed_csv"]
    assert by_fmt["json"]["n"] == m["json_records"]
    assert by_fmt["json"]["bad"] == m["malformed_json"]
    assert m["malformed_csv"] + m["malformed_json"] > 0
    bad = bronze.where("_error is not null")
    # raw text and a reason on every malformed row; no parsed data that could be mistaken
    assert bad.where("_raw is null or _error = '' or listing_id is not null").count() == 0
    assert bad.where("_error like 'too few fields%'").count() == m["csv_too_few"]
    assert bad.where("_error like 'too many fields%'").count() == m["csv_too_many"]
    assert bad.where("_error like 'column sqft:%'").count() == m["csv_bad_type"]
    assert bad.where("_error like 'column bedrooms:%'").count() == m["json_wrong_type"]
    # quoted newlines stay inside one record
    assert bronze.where("description like '%\\nline two'").count() == m["quoted_newlines"]
    # positions: unique per file, 1..n
    pos = (
        bronze.groupBy("_source_file")
        .agg(
            F.min("_source_position").alias("lo"),
            F.max("_source_position").alias("hi"),
            F.countDistinct("_source_position").alias("n"),
            F.count(F.lit(1)).alias("rows"),
        )
        .collect()
    )
    assert all(r["lo"] == 1 and r["hi"] == r["n"] == r["rows"] for r in pos)
    # the position points at the record: a JSON record's line in its file
    first_bad_json = bad.where("_source_format = 'json'").orderBy("_source_position").first()
    lines = open(first_bad_json["_source_file"].removeprefix("file:")).read().splitlines()
    assert lines[first_bad_json["_source_position"] - 1] == first_bad_json["_raw"]
    assert rec.output_counts["bronze_listings"] == 300
    assert rec.status == "succeeded"


def test_same_date_twice_gives_identical_content_and_leaves_other_dates(spark, landed):
    path = landed.table_path("bronze_listings")
    ingest_files.run(spark, landed, D1)
    ingest_files.run(spark, landed, D2)
    first = delta_io.read(spark, path).localCheckpoint()
    v_before = delta_io.version(spark, path)
    ingest_files.run(spark, landed, D1)
    again = delta_io.read(spark, path)
    assert delta_io.version(spark, path) == v_before + 1
    assertDataFrameEqual(again, first)
    assert again.where(F.col("_ingest_date") == D2).count() == 300


def test_run_log_gets_one_row_per_run_with_counts_and_versions(spark, landed):
    ingest_files.run(spark, landed, D1)
    log = delta_io.read(spark, landed.table_path("run_log")).where("job = 'ingest_files'")
    row = log.collect()[-1]
    assert log.count() == 1 and row["status"] == "succeeded" and row["pipeline"] == "houses"
    assert row["input_counts"]["bronze_listings.csv.records"] == 210
    assert row["input_counts"]["bronze_listings.json.records"] == 90
    assert row["output_counts"]["bronze_listings"] == 300
    assert row["delta_versions"]["bronze.houses_listings"] == [0]
    assert row["duration_s"] > 0 and row["run_date"] == D1


def test_no_files_for_the_date_fails_clearly_and_logs_the_failure(spark, landed):
    with pytest.raises(JobError, match=r"no files match .*2030-01-01"):
        ingest_files.run(spark, landed, dt.date(2030, 1, 1))


def test_csv_header_that_differs_from_the_schema_fails_clearly(spark, landed):
    csv = next((landed.root / "landing/houses/listings/date=2026-01-01").glob("*.csv"))
    text = csv.read_text().split("\n", 1)
    csv.write_text(text[0].replace("sqft,bedrooms", "bedrooms,sqft") + "\n" + text[1])
    with pytest.raises(JobError, match="CSV header differs from the spec's schema"):
        ingest_files.run(spark, landed, D1)
    log = delta_io.read(spark, landed.table_path("run_log"))
    assert log.where("status = 'failed' and error like '%header%'").count() == 1
    assert delta_io.version(spark, landed.table_path("bronze_listings")) is None  # nothing written


def test_main_returns_clear_exit_codes(cfg, capsys, caplog):
    assert (
        ingest_files.main(
            [
                "--pipeline",
                "nosuch",
                "--date",
                "2026-01-01",
                "--env",
                "test",
                "--set",
                f"lakehouse_root={cfg.lakehouse_root}",
            ]
        )
        == 2
    )
    assert "pipeline spec" in caplog.text and "does not exist" in caplog.text
    with pytest.raises(SystemExit):
        ingest_files.main(["--pipeline", "houses", "--date", "01/02/2026"])
    assert "not a YYYY-MM-DD date" in capsys.readouterr().err
