"""`lakeloop table history|restore|vacuum`: versions joined to the run log, Delta RESTORE and
VACUUM recorded in it, and vacuum refusing to break time travel (registered models included)."""

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import cli, delta_io, runlog, table_ops
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_files
from lakeloop.jobs.common import JobError
from lakeloop.ml import lineage, tracking
from tests.conftest import spec_variant
from tests.integration.test_train_predict import CLASSIFIER, ml_config

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
MODEL = {**CLASSIFIER, "name": "houses_tables"}  # a model section; nothing is trained


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """houses with the model above: bronze listings ingested for two dates (versions 0, 1)."""
    tmp = tmp_path_factory.mktemp("tables")
    p, _ = spec_variant(ml_config(tmp), tmp, lambda d: d.update(model=MODEL))
    gen.generate(p, start=D1, days=2, rows_per_day=40, produce=False)
    runs = [ingest_files.run(spark, p, d) for d in (D1, D2)]
    return p, runs


def table_cli(p, *args: str) -> int:
    base = ["--pipeline", str(p.source_file), "--env", "test"]
    base += ["--set", f"lakehouse_root={p.root}"]
    base += ["--set", f"mlflow.tracking_uri={p.cfg.mlflow.tracking_uri}"]
    return cli.main(["table", *args, *base])


def run_log(spark, p, job):
    return runlog.runs(spark, p).where(F.col("job") == job).collect()


def test_history_names_the_run_that_wrote_each_version(spark, lake, capsys):
    p, (first, second) = lake
    assert table_cli(p, "history", "--table", "bronze_listings", "--json") == 0
    by_version = {c["version"]: c for c in json.loads(capsys.readouterr().out)}
    for v, rec, day in ((0, first, D1), (1, second, D2)):
        c = by_version[v]
        assert (c["run_id"], c["job"], c["status"]) == (rec.run_id, "ingest_files", "succeeded")
        assert c["run_date"] == day.isoformat() and c["operation"] == "WRITE"
        assert c["metrics"]["numOutputRows"] == str(rec.output_counts["bronze_listings"])
    assert table_cli(p, "history", "--table", "bronze_listings", "--limit", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["version", "timestamp", "(UTC)"]
    newest = max(by_version)
    assert len(lines) == 2 and lines[1].split()[0] == str(newest)
    assert lines[1].endswith(by_version[newest]["run_id"])


def test_restore_brings_back_the_old_content_and_is_run_logged(spark, lake, capsys):
    p, (first, _) = lake
    path = p.table_path("bronze_listings")
    then = delta_io.read_version(spark, path, 0).localCheckpoint()
    before = delta_io.version(spark, path)
    assert delta_io.read(spark, path).count() > then.count()
    assert table_cli(p, "restore", "--table", "bronze_listings", "--version", "0") == 0
    out = json.loads(capsys.readouterr().out)
    assertDataFrameEqual(delta_io.read(spark, path), then)
    assert delta_io.version(spark, path) == before + 1
    logged = [r for r in run_log(spark, p, "restore_table") if r.run_id == out["run_id"]]
    assert len(logged) == 1 and logged[0].status == "succeeded"
    assert logged[0].details["table"] == "bronze.houses_listings"
    assert (logged[0].details["from_version"], logged[0].details["to_version"]) == (
        str(before),
        "0",
    )
    assert logged[0].delta_versions == {"bronze.houses_listings": [before + 1]}
    newest = table_ops.history(spark, p, "bronze_listings", 1)[0]
    assert (newest.operation, newest.job, newest.run_id) == (
        "RESTORE",
        "restore_table",
        out["run_id"],
    )


def test_restore_failure_paths(spark, lake, caplog):
    p, _ = lake
    restores = len(run_log(spark, p, "restore_table"))
    assert table_cli(p, "restore", "--table", "bronze_listings", "--version", "99") == 1
    assert "has no version 99: versions 0.." in caplog.text
    code = table_cli(p, "restore", "--table", "bronze_listings", "--timestamp", "2000-01-01")
    assert code == 1 and "is before the table's earliest version (0," in caplog.text
    assert len(run_log(spark, p, "restore_table")) == restores  # nothing was attempted
    with pytest.raises(JobError, match="no Delta table at .*predictions"):
        table_ops.restore(spark, p, "predictions", version=0)


def test_unknown_table_or_no_delta_table_is_a_clear_error(lake, caplog):
    p, _ = lake
    assert table_cli(p, "history", "--table", "silver_lisitngs") == 2
    assert "no table 'silver_lisitngs'; tables: bronze_listings, bronze_sales," in caplog.text
    assert table_cli(p, "vacuum", "--table", "predictions") == 1
    assert "no Delta table at" in caplog.text and "Traceback" not in caplog.text


def test_vacuum_under_seven_days_is_refused_without_force(spark, lake, caplog):
    p, _ = lake
    path = p.table_path("bronze_listings")
    version = delta_io.version(spark, path)
    assert table_cli(p, "vacuum", "--table", "bronze_listings", "--retain-hours", "24") == 2
    assert "a retention of 24 h is under Delta's 7 days (168 h)" in caplog.text
    assert "Pass --force" in caplog.text
    assert delta_io.version(spark, path) == version
    assert delta_io.read_version(spark, path, 1).count() > 0  # old files untouched
    assert run_log(spark, p, "vacuum_table") == []


@pytest.fixture(scope="module")
def trained(spark, lake):
    """A registered model version whose run carries train's lineage tags for training_set
    version 0 (registered directly: training a model would only add minutes); the set has been
    rewritten since (version 1 replaces every file of version 0)."""
    p, _ = lake
    path = p.table_path("training_set")
    rows = spark.range(120).withColumn("sale_price", F.col("id") * 2.0)
    rows.write.format("delta").save(path)
    rows.limit(60).write.format("delta").mode("overwrite").save(path)
    client = tracking.configure(p.cfg)
    run = client.create_run(
        tracking.experiment_id(client, p.cfg, p),
        tags={
            tracking.TAG_TABLE: p.spec.table("training_set"),
            tracking.TAG_PATH: path,
            tracking.TAG_VERSION: "0",
            tracking.TAG_ROWS: "120",
        },
    )
    client.set_terminated(run.info.run_id)
    client.create_registered_model(p.spec.model.name)
    mv = client.create_model_version(p.spec.model.name, run.info.artifact_uri, run.info.run_id)
    return p, int(mv.version)


def test_vacuum_that_would_break_a_model_names_it_and_force_deletes(spark, trained, capsys, caplog):
    p, model_version = trained
    path = p.table_path("training_set")
    at_risk = f"houses_tables v{model_version} (training set version 0)"
    old_files = set(delta_io.read_version(spark, path, 0).inputFiles())

    args = ["vacuum", "--table", "training_set", "--retain-hours", "0"]
    assert table_cli(p, *args) == 2
    assert f"would delete the training set of {at_risk}" in caplog.text
    assert lineage.training_set_as_of(spark, p, model_version)[2][0] == 120  # still readable

    assert table_cli(p, *args, "--dry-run") == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["models_at_risk"] == [at_risk] and dry["run_id"] is None
    assert {table_ops._local(f) for f in old_files} <= set(dry["files"])

    # at the default retention nothing of version 0 is old enough: the model is safe
    safe = table_ops.vacuum(spark, p, "training_set", dry_run=True)
    assert safe.files == [] and safe.at_risk == []

    assert table_cli(p, *args, "--force") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["models_at_risk"] == [at_risk] and out["files"] == len(dry["files"])
    assert old_files and not any(Path(table_ops._local(f)).exists() for f in old_files)
    with pytest.raises(Exception, match="FILE_NOT_EXIST"):  # time travel to version 0 fails
        delta_io.read_version(spark, path, 0).collect()  # (count() reads stats)
    with pytest.raises(JobError, match=r"version 0 at .* cannot be read \(vacuumed"):
        lineage.training_set_as_of(spark, p, model_version)  # a clear error, not a traceback
    assert delta_io.read(spark, path).count() == 60  # the current version is intact
    (logged,) = run_log(spark, p, "vacuum_table")
    assert logged.run_id == out["run_id"] and logged.status == "succeeded"
    assert logged.details["models_at_risk"] == at_risk and logged.details["force"] == "true"
    assert logged.output_counts["files_deleted"] == len(dry["files"])
    ops = {c.operation: c for c in table_ops.history(spark, p, "training_set", 3)}
    assert ops["VACUUM END"].job == "vacuum_table" and ops["VACUUM END"].run_id == out["run_id"]
