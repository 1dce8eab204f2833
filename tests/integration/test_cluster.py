"""The same job files and spec on a real cluster: `lakeloop cluster up` (HDFS NameNode +
DataNode, a Spark standalone master + 2 workers, an MLflow tracking server), every job submitted
with `spark-submit --py-files dist/lakeloop-*.zip` from a folder outside the checkout, the spec
read from HDFS, the tables on HDFS. Every table must equal a `local[*]` run of the same inputs
(dirty files, late sales, dead letters and all), the tasks must have run in the workers'
executors, and the model must be registered on the tracking server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import cli, cluster, delta_io, storage
from lakeloop.config import load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import (
    build_features,
    build_training_set,
    ingest_files,
    ingest_kafka,
    predict,
    train,
    validate,
)
from lakeloop.kafka_io import ensure_topic
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster

VENV_BIN = Path(sys.executable).parent
DAYS = (dt.date(2026, 1, 1), dt.date(2026, 1, 2))
# ingest_files -> predict (materialize: the online store is a file on one machine, tested in
# process by test_materialize.py)
JOBS = tuple(j for j in cli.JOBS if j not in ("monitor", "report", "materialize"))
# As the demo's lifecycle: the model learns from the backlog as of the first day (the training
# set + train), then every day is ingested, validated, featurized and scored. Data Docs (built
# by GX on the driver, then uploaded to HDFS) on the last day only: they cost ~40 s a run.
PLAN = (
    (DAYS[0], JOBS, False),
    (DAYS[1], tuple(j for j in JOBS if j not in ("build_training_set", "train")), True),
)
IN_PROCESS = {
    "ingest_files": ingest_files.run,
    "ingest_kafka": ingest_kafka.run,
    "validate": validate.run,
    "build_features": build_features.run,
    "build_training_set": build_training_set.run,
    "train": train.run,
    "predict": predict.run,
}
# columns that name a run (a uuid of the run, an MLflow run id, a micro-batch id), not data
RUN_COLUMNS = {"_run_id", "run_id", "model_run_id", "challenger_run_id", "_batch_id"}


@pytest.fixture(scope="module")
def endpoints():
    """A test cluster of its own (conf/test/cluster.yaml: other ports and home than a
    developer's), started through the project's own code and stopped after the module."""
    cfg = load_config("test", {"lakehouse_root": "/tmp/unused"}, project_root=ROOT)
    cluster.up(cfg)
    try:
        yield cluster.endpoints(cfg)
    finally:
        cluster.down(cfg)


@pytest.fixture(scope="module")
def py_files():
    """`make dist`'s --py-files archive (built here the same way)."""
    proc = subprocess.run(
        ["make", "-s", "dist"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = sorted((ROOT / "dist").glob("lakeloop-*.zip"))
    assert zips, "make dist wrote no zip"
    return zips[-1]


@pytest.fixture(scope="module")
def inputs(broker, tmp_path_factory):
    """Two days of houses with 5% malformed rows, produced sales (some late, some malformed
    into dead letters) on a topic of this test's own; the spec written to a local file."""
    tmp = tmp_path_factory.mktemp("cluster")
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"
    data = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    data["sources"]["kafka"][0].update(topic=topic, partitions=2)
    # a model of this run's own: the test cluster's MLflow store outlives the module
    data["model"]["name"] = f"houses_price_{topic.rsplit('.', 1)[1]}"
    spec = tmp / "houses.yaml"
    spec.write_text(yaml.safe_dump(data))
    local = _local_config(tmp)
    p = load_pipeline(local, str(spec))
    assert ensure_topic(local, p.spec.sources.kafka[0]).partitions == 2
    gen.generate(p, start=DAYS[0], days=len(DAYS), rows_per_day=120, malformed=0.05)
    return tmp, spec


def _local_config(tmp: Path):
    return load_config(
        "test",
        {
            "lakehouse_root": str(tmp / "local"),
            "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp)},
        },
        project_root=ROOT,
    )


def _cluster_sets(ep: cluster.Endpoints, root: str, broker_cfg) -> list[str]:
    return [
        f"lakehouse_root={root}",
        f"spark.master={ep.spark_master}",
        f"mlflow.tracking_uri={ep.mlflow_uri}",
        f"spark.extra_conf.spark.eventLog.dir={ep.hdfs_uri}/spark-events",
        f"spark.extra_conf.spark.hadoop.fs.defaultFS={ep.hdfs_uri}",
        # event logs as plain JSON lines for the check below (Spark 4 writes zstd by default)
        "spark.extra_conf.spark.eventLog.compress=false",
        f"kafka.bootstrap_servers={broker_cfg.kafka.bootstrap_servers}",
        "spark.shuffle_partitions=2",  # as the local run, so that both sides plan alike
        "spark.driver_memory=1g",
    ]


def _submit(job: str, day: dt.date, ep, spec_uri: str, sets: list[str], py_files: Path, cwd):
    ep_cfg = load_config("cluster", _overrides(sets), project_root=ROOT)
    cmd = [
        str(VENV_BIN / "spark-submit"),
        "--master",
        ep.spark_master,
        "--py-files",
        str(py_files),
        "--conf",
        "spark.executor.memory=1g",
        # the driver JVM is spark-submit's own: its options on the command, as Airflow's
        # tasks give them
        "--driver-java-options",
        ep_cfg.spark.driver_java_options,
        # the executors' Python: this machine's virtualenv (a deployment setting, like a venv
        # archive shipped with --archives on a real cluster)
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        str(ROOT / "jobs" / f"{job}.py"),
        "--project",
        str(ROOT),
        "--pipeline",
        spec_uri,
        "--env",
        "cluster",
        "--date",
        day.isoformat(),
    ]
    for s in sets:
        cmd += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k not in ("LAKELOOP_HOME", "PYTHONPATH")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{job} {day} failed (exit {proc.returncode}):\n{out[-4000:]}"
    return time.monotonic() - started, out


def _data(df: DataFrame) -> DataFrame:
    """The data columns: run metadata dropped, a source file by its name only."""
    keep = [c for c in df.columns if c not in RUN_COLUMNS]
    df = df.select(*keep)
    if "_source_file" in df.columns:
        df = df.withColumn("_source_file", F.element_at(F.split("_source_file", "/"), -1))
    return df


def test_jobs_on_the_cluster_equal_a_local_run(
    spark: SparkSession, endpoints, py_files, inputs, broker
):
    tmp, spec_file = inputs
    ep = endpoints
    run_dir = tmp / "elsewhere"  # spark-submit from a folder that is not the checkout
    run_dir.mkdir()
    root = f"{ep.hdfs_uri}/lakehouse-{uuid.uuid4().hex[:8]}"
    local = load_pipeline(_local_config(tmp), str(spec_file))

    # the same landing files on HDFS, and the spec read from there
    storage.upload_dir(spark, str(local.local_root / "landing"), f"{root}/landing")
    spec_uri = f"{root}/_specs/houses.yaml"
    storage.write_text(spark, spec_uri, spec_file.read_text())

    sets = _cluster_sets(ep, root, broker)
    timings: dict[str, float] = {}
    for day, jobs, data_docs in PLAN:
        day_sets = [*sets, f"quality.data_docs={str(data_docs).lower()}"]
        for job in jobs:
            timings[f"{job} {day}"], _ = _submit(
                job, day, ep, spec_uri, day_sets, py_files, run_dir
            )
            IN_PROCESS[job](spark, local, day)
    print("cluster job seconds:", json.dumps({k: round(v, 1) for k, v in timings.items()}))

    on_cluster = load_pipeline(
        load_config("cluster", _overrides(sets), project_root=ROOT), str(spec_file)
    )
    compared = []
    for key in sorted(set(local.spec.tables) - {"run_log"}):
        mine, theirs = local.table_path(key), on_cluster.table_path(key)
        assert on_cluster.table_path(key).startswith(ep.hdfs_uri)
        if delta_io.version(spark, mine) is None:
            assert delta_io.version(spark, theirs) is None, key
            continue
        expected = _data(delta_io.read(spark, mine))
        actual = _data(delta_io.read(spark, theirs))
        assert actual.count() == expected.count() > 0 or key.startswith(("quarantine", "dead"))
        assertDataFrameEqual(actual, expected, rtol=1e-9, atol=1e-9)
        compared.append(key)
    assert {"bronze_listings", "silver_listings", "features", "predictions"} <= set(compared)
    # no URI used as a local path (`hdfs://nn/x` as a Path is the folder `hdfs:/nn/x`)
    assert not any(":" in p.name for p in run_dir.iterdir()), list(run_dir.iterdir())

    # the human-readable outputs on HDFS too: validate's summary + uploaded Data Docs, the
    # model reports
    day = DAYS[-1].isoformat()
    summary = storage.read_text(spark, on_cluster.reports_uri("validate", day, "summary.md"))
    docs = on_cluster.reports_uri("validate", day, "bronze_listings", "data_docs", "index.html")
    assert f"GX Data Docs: {docs}" in summary and storage.exists(spark, docs)
    assert storage.list_names(spark, on_cluster.reports_uri("models"))

    # every job ran its tasks in the workers' executors (the event log of each application)
    apps = _event_logs(spark, f"{ep.hdfs_uri}/spark-events")
    mine = [a for a in apps if a["name"].startswith("lakeloop-") and a["root"] == root]
    assert len(mine) == len(timings), [a["name"] for a in apps]
    for app in mine:
        assert app["executors"] >= 1 and app["tasks"] > 0, app
        assert app["tasks_on_driver"] == 0, app  # standalone: every task in a worker's JVM

    # the model is on the tracking server, with the champion alias
    client = MlflowClient(tracking_uri=ep.mlflow_uri, registry_uri=ep.mlflow_uri)
    name = local.spec.model.name
    versions = client.search_model_versions(f"name = '{name}'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_model_version_by_alias(name, "champion") is not None


def _overrides(sets: list[str]) -> dict:
    from lakeloop.config import parse_set_pairs

    return parse_set_pairs(sets)


def _event_file_index(uri: str) -> int:
    """`…/events_12_app-…` -> 12 (a rolled log's order); a plain log file -> 0."""
    name = uri.rsplit("/", 1)[1]
    return int(name.split("_")[1]) if name.startswith("events_") else 0


def _event_logs(spark: SparkSession, folder: str) -> list[dict]:
    """Per application in the event log folder: its name, the lakehouse root it used, its
    executors and where its tasks ran."""
    out = []
    # Spark 4 rolls event logs by default: a folder eventlog_v2_<app> of events_<n>_<app> files
    # (a plain file per application when rolling is off)
    logs: dict[str, list[str]] = {}
    for uri in storage.glob_files(spark, f"{folder}/*") + storage.glob_files(
        spark, f"{folder}/eventlog_v2_*/events_*"
    ):
        if uri.endswith((".zstd", ".lz4", ".snappy", ".lzf")):
            continue  # compressed: another run's (this one's are plain), on a reused cluster
        app_id = uri.rsplit("/eventlog_v2_", 1)[1].split("/")[0] if "/eventlog_v2_" in uri else uri
        logs.setdefault(app_id, []).append(uri)
    for uris_of_app in logs.values():
        text = "\n".join(
            storage.read_text(spark, u) for u in sorted(uris_of_app, key=_event_file_index)
        )
        events = [json.loads(line) for line in text.splitlines() if line]
        start = next((e for e in events if e["Event"] == "SparkListenerEnvironmentUpdate"), {})
        props = start.get("Spark Properties", {})
        app = next((e for e in events if e["Event"] == "SparkListenerApplicationStart"), {})
        ends = [e for e in events if e["Event"] == "SparkListenerTaskEnd"]
        out.append(
            {
                "name": app.get("App Name", ""),
                "root": props.get("spark.sql.warehouse.dir", "").rsplit("/_warehouse", 1)[0],
                "executors": sum(e["Event"] == "SparkListenerExecutorAdded" for e in events),
                "tasks": len(ends),
                "tasks_on_driver": sum(e["Task Info"]["Executor ID"] == "driver" for e in ends),
            }
        )
    return out
