"""validate -> silver + quarantine, build_features MERGE and backfill, on temp Delta tables
with generated files and sales through the real broker."""

import datetime as dt
import json
import shutil
import uuid

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io
from lakeloop.config import load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import build_features, ingest_files, ingest_kafka, validate
from lakeloop.jobs.common import JobError
from tests.conftest import ROOT, spec_variant

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
DAY = "_ingest_date"


def _count(spark, pipeline, key, date=None):
    df = delta_io.read(spark, pipeline.table_path(key))
    return (df.where(F.col(DAY) == date) if date else df).count()


def _only_listings(d):
    """Spec edit: validate only the listings (no Kafka needed)."""
    d["expectations"] = [e for e in d["expectations"] if e["source"] == "bronze_listings"]


@pytest.fixture
def listings_only(cfg, tmp_path):
    """houses validating only the listings (no Kafka needed)."""
    pipeline, _ = spec_variant(
        cfg,
        tmp_path,
        _only_listings,
    )
    gen.generate(pipeline, start=D1, days=2, rows_per_day=400, malformed=0.01, produce=False)
    return pipeline


def test_bronze_equals_silver_plus_quarantine_and_no_bad_row_in_silver(spark, listings_only):
    p = listings_only
    ingest_files.run(spark, p, D1)
    rec = validate.run(spark, p, D1)
    bronze = _count(spark, p, "bronze_listings", D1)
    silver = delta_io.read(spark, p.table_path("silver_listings")).where(F.col(DAY) == D1)
    quarantine = delta_io.read(spark, p.table_path("quarantine_listings")).where(F.col(DAY) == D1)
    assert bronze == silver.count() + quarantine.count() == 400
    malformed = (
        delta_io.read(spark, p.table_path("bronze_listings")).where("_error is not null").count()
    )
    assert malformed > 0 and quarantine.count() >= malformed
    assert "_error" not in silver.columns and "_raw" not in silver.columns
    for c in ("listing_id", "listed_at", "zipcode", "sqft", "bathrooms", "year_built"):
        assert silver.where(F.col(c).isNull()).count() == 0, c  # filled or quarantined
    assert silver.groupBy("listing_id").count().where("count > 1").count() == 0
    assert (
        quarantine.where(
            "size(_failed_rules) = 0 or _reason = '' or _run_id is null "
            "or _suite_version is null or _source_position is null"
        ).count()
        == 0
    )
    assert (
        quarantine.where("_reason like '%expect_column_values_to_be_null(_error)%'").count()
        == malformed
    )
    assert silver.where("array_contains(_flags, 'outlier(sqft)')").count() > 0
    summary = open(rec.details["summary"]).read()
    assert "pass rate" in summary and "top failing rules" in summary
    # conf/test turns GX Data Docs off (test_data_docs turns them on and checks them)
    assert "bronze_listings.data_docs" not in rec.details
    assert rec.output_counts["silver_listings"] == silver.count()


def test_rerun_same_date_gives_identical_silver_and_quarantine(spark, listings_only):
    p = listings_only
    ingest_files.run(spark, p, D1)
    ingest_files.run(spark, p, D2)
    validate.run(spark, p, D1)
    validate.run(spark, p, D2)
    silver1 = delta_io.read(spark, p.table_path("silver_listings")).localCheckpoint()
    q1 = delta_io.read(spark, p.table_path("quarantine_listings")).drop("_run_id").localCheckpoint()
    validate.run(spark, p, D1)
    assertDataFrameEqual(delta_io.read(spark, p.table_path("silver_listings")), silver1)
    assertDataFrameEqual(
        delta_io.read(spark, p.table_path("quarantine_listings")).drop("_run_id"), q1
    )


def test_blocking_table_expectation_fails_and_writes_nothing(spark, cfg, tmp_path):
    exp = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", exp)
    suite_file = exp / "houses/bronze_listings.json"
    suite = json.loads(suite_file.read_text())
    suite["expectations"].append(
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 1_000_000},
            "meta": {"blocking": True},
        }
    )
    suite_file.write_text(json.dumps(suite))
    cfg2 = load_config(
        "test",
        {"lakehouse_root": str(cfg.lakehouse_root), "expectations_dir": str(exp)},
        project_root=ROOT,
    )
    p, _ = spec_variant(
        cfg2,
        tmp_path,
        _only_listings,
    )
    gen.generate(p, start=D1, days=1, rows_per_day=50, produce=False)
    ingest_files.run(spark, p, D1)
    # with Data Docs off (conf/test) GX still runs the table-level suite, and it still blocks
    assert p.cfg.quality.data_docs is False
    with pytest.raises(
        JobError, match="blocking expectation.*expect_table_row_count_to_be_between"
    ) as blocked:
        validate.run(spark, p, D1)
    assert "observed 50" in str(blocked.value) and "Data Docs" not in str(blocked.value)
    assert delta_io.version(spark, p.table_path("silver_listings")) is None
    assert delta_io.version(spark, p.table_path("quarantine_listings")) is None
    # ... and no site is rendered: the summary is written, no Data Docs beside it
    reports = p.local_root / "reports/houses/validate/2026-01-01"
    assert (reports / "summary.md").is_file() and "Data Docs" not in (
        reports / "summary.md"
    ).read_text()
    assert not list(reports.rglob("*.html")) and not list(reports.rglob("data_docs"))


def test_schema_change_is_quarantined_or_a_clear_error_never_nulled(spark, listings_only):
    p = listings_only
    folder = p.local_root / "landing/houses/listings/date=2026-01-01"
    json_file = next(folder.glob("*.json"))
    rows = [json.loads(x) for x in json_file.read_text().splitlines() if x.startswith('{"')][:3]
    rows = [r for r in rows if isinstance(r.get("bedrooms"), int)]
    changed = [
        {**rows[0], "listing_id": "L20260101-900001", "garage_spaces": 2},  # new column
        {**rows[1], "listing_id": "L20260101-900002", "sqft": "2100"},
    ]  # int as string
    with json_file.open("a") as f:
        f.write("\n".join(json.dumps(r) for r in changed) + "\n")
    ingest_files.run(spark, p, D1)
    validate.run(spark, p, D1)
    q = delta_io.read(spark, p.table_path("quarantine_listings"))
    reasons = {
        r["_raw"] and json.loads(r["_raw"])["listing_id"]: r["_reason"]
        for r in q.where("_source_format = 'json' and _raw like '%90000%'").collect()
    }
    assert set(reasons) == {"L20260101-900001", "L20260101-900002"}
    assert (
        "unexpected field(s) not in the schema: garage_spaces"
        in delta_io.read(spark, p.table_path("bronze_listings"))
        .where("_raw like '%900001%'")
        .first()["_error"]
    )
    silver = delta_io.read(spark, p.table_path("silver_listings"))
    assert silver.where("listing_id like 'L20260101-9%'").count() == 0
    # a new CSV column changes the header: a clear error, not nulls
    csv = next(folder.glob("*.csv"))
    head, body = csv.read_text().split("\n", 1)
    csv.write_text(head + ",garage_spaces\n" + body)
    with pytest.raises(JobError, match="CSV header differs"):
        ingest_files.run(spark, p, D1)


def test_missing_bronze_table_is_a_clear_error(spark, listings_only):
    with pytest.raises(JobError, match="does not exist yet.*run the ingest jobs first"):
        validate.run(spark, listings_only, D1)


@pytest.fixture(scope="module")
def validated_houses(spark, broker, tmp_path_factory):
    """Files and sales for three days, ingested and validated once for this module."""
    tmp = tmp_path_factory.mktemp("houses")
    cfg = load_config("test", {"lakehouse_root": str(tmp / "lakehouse")}, project_root=ROOT)
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"
    p, _ = spec_variant(cfg, tmp, lambda d: d["sources"]["kafka"][0].update(topic=topic))
    gen.generate(p, start=D1, days=3, rows_per_day=200, malformed=0.01)
    for d in (D1, D2, D3):
        ingest_files.run(spark, p, d)
    ingest_kafka.run(spark, p, D3)
    for d in (D1, D2, D3):
        validate.run(spark, p, d)  # sales land on D3 only; their row count only warns
    return p


@pytest.fixture
def full_houses(validated_houses):
    """The module's validated pipeline with no feature table or training set yet."""
    for key in ("features", "training_set"):
        shutil.rmtree(validated_houses.table_path(key), ignore_errors=True)
    return validated_houses


def test_features_merge_idempotent_and_backfill_matches_daily(spark, full_houses):
    p = full_houses
    rec = build_features.backfill(spark, p, D1, D3)
    feats = delta_io.read(spark, p.table_path("features"))
    silver = delta_io.read(spark, p.table_path("silver_listings"))
    assert feats.count() == silver.count() == rec.output_counts["features"]
    assert rec.details["chunks"] == "1"
    assert {
        "total_rooms",
        "zip_median_price_90d",
        "zip_sales_90d",
        "zip_median_price_per_sqft_90d",
        "feature_ts",
        "feature_date",
    } <= set(feats.columns)
    snapshot = feats.localCheckpoint()
    for d in (D1, D2, D3):  # daily runs over the same dates change nothing
        build_features.run(spark, p, d)
    assertDataFrameEqual(delta_io.read(spark, p.table_path("features")), snapshot)
    # no aggregate sees a sale on or after the listing's own day
    sales = delta_io.read(spark, p.table_path("silver_sales"))
    first_sale = sales.agg(F.min(F.to_date("sold_at"))).first()[0]
    early = feats.where(F.col("feature_date") <= F.lit(first_sale))
    assert early.where("zip_sales_90d > 0").count() == 0


AGGREGATES = ("zip_median_price_90d", "zip_sales_90d", "zip_median_price_per_sqft_90d")


def test_most_entities_have_window_aggregates(spark, full_houses):
    """The generator's backlog of past sales (with the first day) fills the 90-day windows: the
    second day's listings have a zipcode median, a sales count and a median price per sqft."""
    p = full_houses
    build_features.backfill(spark, p, D1, D3)
    day2 = delta_io.read(spark, p.table_path("features")).where(F.col("feature_date") == D2)
    r = day2.agg(
        F.count(F.lit(1)).alias("n"),
        F.count_if(F.col("zip_sales_90d") > 0).alias("zip_sales_90d"),
        F.count("zip_median_price_90d").alias("zip_median_price_90d"),
        F.count("zip_median_price_per_sqft_90d").alias("zip_median_price_per_sqft_90d"),
    ).first()
    assert r.n > 150, r
    for c in AGGREGATES:
        assert r[c] >= 0.8 * r.n, (c, r)


def test_backfill_in_chunks_equals_one_chunk(spark, full_houses, tmp_path):
    p = full_houses
    build_features.backfill(spark, p, D1, D3)
    one = delta_io.read(spark, p.table_path("features")).localCheckpoint()
    shutil.rmtree(p.table_path("features"))
    chunked = type(p)(
        p.cfg,
        p.spec.model_copy(
            update={"features": p.spec.features.model_copy(update={"backfill_chunk_days": 1})}
        ),
        p.source_file,
    )
    rec = build_features.backfill(spark, chunked, D1, D3)
    assert rec.details["chunks"] == "3" and len(rec.delta_versions["features.houses_listings"]) == 3
    assertDataFrameEqual(delta_io.read(spark, p.table_path("features")), one)


def test_duplicate_keys_in_one_batch_merge_to_distinct_keys(spark, full_houses):
    p = full_houses
    batch = build_features.features_for(spark, p, D1, D1)
    doubled = batch.unionByName(batch).unionByName(batch)
    from lakeloop.transforms.features import latest_per_key

    build_features.merge_features(
        spark, p, latest_per_key(doubled, [p.spec.entity_key, "feature_ts"], ["feature_ts"]), "t"
    )
    feats = delta_io.read(spark, p.table_path("features"))
    assert feats.count() == batch.select(p.spec.entity_key, "feature_ts").distinct().count()
    with pytest.raises(Exception, match="(?i)multiple source rows matched"):
        build_features.merge_features(spark, p, doubled, "t")  # why the de-dup step exists


def test_training_set_is_point_in_time(spark, full_houses):
    from lakeloop.jobs import build_training_set

    p = full_houses
    build_features.backfill(spark, p, D1, D3)
    as_of = dt.date(2026, 3, 31)
    rec = build_training_set.run(spark, p, as_of)
    ts = delta_io.read(spark, p.table_path("training_set"))
    sales = delta_io.read(spark, p.table_path("silver_sales")).where(
        F.to_date("sold_at") <= F.lit(as_of)
    )
    assert ts.count() == sales.count() == rec.output_counts["training_set"] > 0
    assert ts.where("_has_features and feature_ts > sold_at").count() == 0  # never the future
    # sales of listings we have features for get them (listings precede their sales)
    listed = delta_io.read(spark, p.table_path("features")).select("listing_id").distinct()
    assert ts.join(listed, "listing_id").where("not _has_features").count() == 0
    assert ts.where("_has_features").count() == rec.output_counts["training_set.with_features"]


def test_features_and_training_set_need_their_inputs(spark, listings_only):
    from lakeloop.jobs import build_training_set

    with pytest.raises(JobError, match="silver.houses_listings does not exist.*run validate first"):
        build_features.run(spark, listings_only, D1)
    with pytest.raises(JobError, match="does not exist.*run validate and build_features first"):
        build_training_set.run(spark, listings_only, D1)
    with pytest.raises(JobError, match="--end 2026-01-01 is before --start 2026-01-02"):
        build_features.backfill(spark, listings_only, D2, D1)


# --- one date is all or nothing; a blocking failure shows its cause ---------------------------


def _suites(cfg, tmp_path, edits):
    """A config whose expectations dir is a copy of the project's with `edits` (suite file ->
    function editing its parsed JSON) applied."""
    exp = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", exp, dirs_exist_ok=True)
    for name, edit in edits.items():
        path = exp / "houses" / name
        suite = json.loads((exp / "houses/bronze_listings.json").read_text())
        edit(suite)
        path.write_text(json.dumps(suite))
    overrides = {"lakehouse_root": str(cfg.lakehouse_root), "expectations_dir": str(exp)}
    return load_config("test", overrides, project_root=ROOT)


def _listings_twice(second_suite, first_suite=None):
    """houses validating its listings into two pairs of tables, the second with its own suite."""

    def edit(d):
        listings = next(e for e in d["expectations"] if e["source"] == "bronze_listings")
        if first_suite:
            listings["suite"] = f"houses/{first_suite}"
        second = {
            **listings,
            "suite": f"houses/{second_suite}",
            "silver": "silver_listings_2",
            "quarantine": "quarantine_listings_2",
        }
        d["tables"].update(
            silver_listings_2="silver.houses_listings_2",
            quarantine_listings_2="quarantine.houses_listings_2",
        )
        d["expectations"] = [listings, second]

    return edit


def _versions(spark, p, keys):
    return {k: delta_io.version(spark, p.table_path(k)) for k in keys}


FIRST = ("silver_listings", "quarantine_listings")
SECOND = ("silver_listings_2", "quarantine_listings_2")


def test_a_date_whose_second_table_blocks_writes_neither(spark, cfg, tmp_path):
    too_many = {
        "type": "expect_table_row_count_to_be_between",
        "kwargs": {"min_value": 1_000_000},
        "meta": {"blocking": True},
    }
    cfg2 = _suites(cfg, tmp_path, {"blocking.json": lambda s: s["expectations"].append(too_many)})
    both, _ = spec_variant(cfg2, tmp_path, _listings_twice("blocking.json"))
    first_only, _ = spec_variant(
        cfg2, tmp_path, lambda d: d.update(expectations=d["expectations"][:1])
    )
    gen.generate(both, start=D1, days=2, rows_per_day=40, produce=False)
    ingest_files.run(spark, both, D1)
    ingest_files.run(spark, both, D2)
    validate.run(spark, first_only, D1)  # the first table has a version to keep
    before = _versions(spark, both, FIRST)
    silver = delta_io.read(spark, both.table_path("silver_listings")).localCheckpoint()
    with pytest.raises(JobError) as failed:
        validate.run(spark, both, D2)
    message = str(failed.value)
    assert "nothing was written for this date" in message
    assert (
        "silver.houses_listings + quarantine.houses_listings (from bronze.houses_listings): "
        "passed, not written" in message
    )
    assert (
        "silver.houses_listings_2 + quarantine.houses_listings_2 (from "
        "bronze.houses_listings): blocking expectation(s) failed: "
        "expect_table_row_count_to_be_between" in message
    )
    assert _versions(spark, both, FIRST) == before  # no new Delta version
    assert _versions(spark, both, SECOND) == dict.fromkeys(SECOND)
    assertDataFrameEqual(delta_io.read(spark, both.table_path("silver_listings")), silver)
    summary = (both.local_root / "reports/houses/validate/2026-01-02/summary.md").read_text()
    assert summary.count("- NOT written") == 2


def test_a_failed_write_rolls_back_what_the_date_wrote(spark, cfg, tmp_path, monkeypatch):
    """The second table's silver write fails after the first table's two commits: they are
    rolled back (RESTORE, or removed when this run created them) and the message says so."""

    def rows_only(suite):  # (no GX: table-level expectations play no part here)
        rows = [e for e in suite["expectations"] if e["type"].startswith("expect_column_values_")]
        suite["expectations"] = rows

    cfg2 = _suites(cfg, tmp_path, {"rows_only.json": rows_only})
    p, _ = spec_variant(cfg2, tmp_path, _listings_twice("rows_only.json", "rows_only.json"))
    gen.generate(p, start=D1, days=1, rows_per_day=40, malformed=0.05, produce=False)
    ingest_files.run(spark, p, D1)
    real = delta_io.replace_partition
    calls = []

    def third_fails(df, path, *a, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full (injected)")
        return real(df, path, *a, **kw)

    monkeypatch.setattr(delta_io, "replace_partition", third_fails)
    with pytest.raises(JobError) as failed:
        validate.run(spark, p, D1)
    message = str(failed.value)
    assert "writing silver.houses_listings_2 failed: disk full (injected)" in message
    assert "quarantine.houses_listings removed (this run had created it)" in message
    assert "silver.houses_listings removed (this run had created it)" in message
    assert "Not written: silver.houses_listings_2, quarantine.houses_listings_2" in message
    assert _versions(spark, p, FIRST + SECOND) == dict.fromkeys(FIRST + SECOND)

    monkeypatch.setattr(delta_io, "replace_partition", real)
    validate.run(spark, p, D1)
    written = _versions(spark, p, FIRST)
    snapshot = {k: delta_io.read(spark, p.table_path(k)).localCheckpoint() for k in FIRST}
    calls.clear()
    monkeypatch.setattr(delta_io, "replace_partition", third_fails)
    with pytest.raises(JobError, match="silver.houses_listings restored to version 0"):
        validate.run(spark, p, D1)
    for k in FIRST:  # the failed run's commit and its RESTORE: the rows are as before
        assert delta_io.version(spark, p.table_path(k)) == written[k] + 2
        assertDataFrameEqual(delta_io.read(spark, p.table_path(k)), snapshot[k])


def test_a_block_caused_by_a_row_rule_names_it_and_writes_the_summary(spark, cfg, tmp_path):
    """Every row fails an in-set rule, so the would-be silver is empty and the blocking row
    count fails: the error names the row rule and its count, the summary shows examples."""

    def nowhere(suite):
        suite["expectations"].append(
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "zipcode", "value_set": ["00000"]},
            }
        )

    cfg2 = _suites(cfg, tmp_path, {"bronze_listings.json": nowhere})
    p, _ = spec_variant(
        cfg2,
        tmp_path,
        _only_listings,
    )
    gen.generate(p, start=D1, days=1, rows_per_day=30, produce=False)
    ingest_files.run(spark, p, D1)
    with pytest.raises(JobError) as failed:
        validate.run(spark, p, D1)
    message = str(failed.value)
    assert "expect_table_row_count_to_be_between({'min_value': 1}) observed 0" in message
    assert (
        "top row-level failures: expect_column_values_to_be_in_set(zipcode) (30 of 30 "
        "rows, e.g. " in message
    )
    summary = (p.local_root / "reports/houses/validate/2026-01-01/summary.md").read_text()
    assert "expect_column_values_to_be_in_set(zipcode) (30)" in summary
    examples = [
        ln
        for ln in summary.splitlines()
        if ln.startswith("  - expect_column_values_to_be_in_set(zipcode): ")
    ]
    assert len(examples) == 3 and all(
        "listing_id=L20260101-" in e and "value '" in e for e in examples
    )
    assert delta_io.version(spark, p.table_path("silver_listings")) is None
