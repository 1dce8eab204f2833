"""ingest_files on temp Delta tables with generated files (malformed rows included)."""

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io, runlog
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_files
from lakeloop.jobs.common import JobError
from tests.conftest import ROOT, spec_variant

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def _manifest(pipeline, day):
    path = pipeline.local_root / "landing/houses/_manifests" / f"date={day.isoformat()}.json"
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
    log = runlog.runs(spark, landed).where("job = 'ingest_files'")
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
    csv = next((landed.local_root / "landing/houses/listings/date=2026-01-01").glob("*.csv"))
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


# --- hand-written files: timestamps, header detail, wide CSV --------------------------------------

HOUSE_COLUMNS = [
    "listing_id",
    "listed_at",
    "zipcode",
    "sqft",
    "bedrooms",
    "bathrooms",
    "year_built",
    "lot_sqft",
    "condition",
    "has_garage",
    "description",
]


def _land(pipeline, day, csv_lines, json_records):
    folder = pipeline.local_root / "landing/houses/listings" / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("\n".join(csv_lines) + "\n")
    if json_records:
        lines = "\n".join(json.dumps(r) for r in json_records)
        (folder / "part-0.json").write_text(lines + "\n")


def _house(listing_id, listed_at, **more):
    data = ["98101", 1500, 3, 2.0, 1990, 5000, "good", True, "x"]
    values = dict(zip(HOUSE_COLUMNS[2:], data, strict=True))
    return {"listing_id": listing_id, "listed_at": listed_at, **values, **more}


def _csv_line(row):
    return ",".join("true" if v is True else str(v) for v in row.values())


def test_epoch_millis_with_unit_ms_land_as_the_right_instant_and_bad_ones_are_malformed(
    spark, cfg, tmp_path
):
    pipeline, _ = spec_variant(
        cfg, tmp_path, lambda d: d["sources"]["files"][0]["schema"][1].update(unit="ms")
    )
    at = 1767261000000  # 2026-01-01T09:50:00Z
    _land(
        pipeline,
        D1,
        [",".join(HOUSE_COLUMNS), _csv_line(_house("C1", at)), _csv_line(_house("C2", "soon"))],
        [_house("J1", at), _house("J2", at * 1000)],  # J2: microseconds declared as ms
    )
    rec = ingest_files.run(spark, pipeline, D1)
    bronze = delta_io.read(spark, pipeline.table_path("bronze_listings"))
    good = bronze.where("_error is null").select(
        "listing_id", F.date_format("listed_at", "yyyy-MM-dd HH:mm:ss").alias("listed_at")
    )
    assertDataFrameEqual(
        good,
        spark.createDataFrame(
            [("C1", "2026-01-01 09:50:00"), ("J1", "2026-01-01 09:50:00")], good.schema
        ),
    )
    bad = {r["_source_format"]: r for r in bronze.where("_error is not null").collect()}
    assert bad["csv"]["_error"] == (
        "column listed_at: 'soon' is not a number of milliseconds since 1970-01-01 (unit ms)"
    )
    assert bad["csv"]["_raw"].startswith("C2,soon,98101,")
    assert bad["json"]["_error"].startswith(
        "column listed_at: '1767261000000000' read as milliseconds since 1970-01-01 is outside"
    )
    assert bad["json"]["listed_at"] is None and bad["json"]["_raw"].startswith('{"listing_id"')
    assert rec.output_counts["bronze_listings.csv.malformed"] == 1
    assert rec.output_counts["bronze_listings.json.malformed"] == 1
    bronze.toArrow()  # pyarrow reads every stored timestamp (no year 57970)


def test_csv_header_error_keeps_sparks_expected_and_found_columns(spark, houses):
    header = ",".join(HOUSE_COLUMNS).replace("sqft", "square_feet", 1)
    row = _house("C1", "2026-01-01T09:50:00")
    _land(houses, D1, [header, _csv_line(row)], [row])
    with pytest.raises(JobError) as e:
        ingest_files.run(spark, houses, D1)
    msg = str(e.value)
    assert "CSV header differs from the spec's schema" in msg
    assert "Expected: sqft but found: square_feet" in msg
    assert "sources.files[listings_csv].schema" in msg and "part-0.csv" in msg


def test_a_wide_csv_ingests_without_a_codegen_error_in_the_log(cfg, tmp_path):
    """20 columns, 18 of them typed: the per-column error reasons once made a generated method
    over the JVM's 64 KB (Spark logged an ERROR with a 300-line stack trace, then fell back)."""
    extra = ["double", "int", "long", "double", "int", "boolean", "double", "int", "long"]

    def edit(d):
        schema = d["sources"]["files"][0]["schema"]
        schema += [{"name": f"extra_{i}", "type": t} for i, t in enumerate(extra)]
        d["sources"]["files"] = d["sources"]["files"][:1]  # the CSV source only

    pipeline, spec_file = spec_variant(cfg, tmp_path, edit)
    value = {"double": "1.5", "int": "3", "long": "7", "boolean": "true"}
    row = _csv_line(_house("C1", "2026-01-01T09:50:00")) + "".join(f",{value[t]}" for t in extra)
    header = ",".join(HOUSE_COLUMNS + [f"extra_{i}" for i in range(len(extra))])
    _land(pipeline, D1, [header, row, "C2,bad,row"], [])
    args = [sys.executable, "-m", "lakeloop.cli", "run", "ingest_files"]
    args += ["--pipeline", str(spec_file), "--date", D1.isoformat(), "--env", "test"]
    args += ["--set", f"lakehouse_root={pipeline.root}"]
    env = {**os.environ, "LAKELOOP_HOME": str(ROOT)}
    t0 = time.monotonic()
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "bronze_listings.csv.malformed': 1" in log, log[-3000:]
    assert "grows beyond 64 KB" not in log and "Failed to compile" not in log, log[:3000]
    print(f"wide CSV ingest: {time.monotonic() - t0:.1f}s, {len(log.splitlines())} log lines")
