"""The DAGs through the project's own running Airflow (api-server + scheduler, LocalExecutor,
SQLite), against the real broker, for two logical dates:

- D1, a new pipeline: ingest ∥ → validate → build_features; no champion yet, so scoring is
  skipped and `retrain_trigger` emits the `retrain` Asset (reason: no champion); the scheduler
  starts the training DAG on it, which trains as of D1 (the event's date) and promotes v1.
- D2 by `lakeloop backfill` (a backfill run, through the scheduler): the whole lifecycle with
  v1; the monitor recommends nothing, so the trigger is skipped and no training run starts.
- One Spark task of D2 cleared and run again by the scheduler: every table's checksum is
  unchanged. (A whole second run of D2 cost 6.5 min of the test's time; every job's own re-run
  of a date is tested in process.)
- A `retrain_recommended` decision row for D2, then only `retrain_trigger` re-run: the event
  carries the decision's reason and a training run for D2 starts.
- `lakeloop airflow down` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import time
import uuid

import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop import delta_io
from lakeloop.config import load_config, parse_set_pairs
from lakeloop.generate import houses as gen
from lakeloop.kafka_io import ensure_topic
from lakeloop.ml import tracking
from lakeloop.orchestration import plan, runs, server
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

D1, D2 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)
ROWS = 120


@pytest.fixture(scope="module")
def airflow(broker, tmp_path_factory):
    """houses (New York time, its own topic) under a running Airflow, D1 and D2 generated."""
    tmp = tmp_path_factory.mktemp("airflow")
    pipelines = tmp / "pipelines"
    pipelines.mkdir()
    spec = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    spec["timezone"] = "America/New_York"
    spec.pop("serving")  # materialize is tested in process (test_materialize.py), not here
    spec["sources"]["kafka"][0]["topic"] = f"test.af.{uuid.uuid4().hex[:8]}"
    (pipelines / "houses.yaml").write_text(yaml.safe_dump(spec))
    pairs = [
        f"lakehouse_root={tmp / 'lake'}",
        f"pipelines_dir={pipelines}",
        f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
        f"mlflow.artifact_root={tmp / 'art'}",
        f"airflow.home={tmp / 'airflow'}",
        f"kafka.broker.data_dir={broker.path(broker.kafka.broker.data_dir)}",
    ]
    cfg = load_config("test", parse_set_pairs(pairs), project_root=ROOT)
    pipeline = load_pipeline(cfg, "houses")
    ensure_topic(cfg, pipeline.spec.sources.kafka[0])
    gen.generate(pipeline, start=D1, days=2, rows_per_day=ROWS, history=3 * ROWS, sale_days=(2, 9))
    t0 = time.monotonic()
    state = server.up(cfg, pairs)
    assert state["running"] and state["scheduler"] == "healthy", state
    started = time.monotonic() - t0
    try:
        yield cfg, pipeline, pairs, runs.require_up(cfg), started
    finally:
        pids = [p for p in server.status(cfg)["pids"].values() if p]
        server.down(cfg)
        leftover = [p for p in pids if server._group_alive(p)]
        assert not leftover, f"process groups left after down: {leftover}"
        # nothing at all of this Airflow home: no task process, spark-submit or JVM
        assert server.home_processes(cfg) == []


def _tis(api, dag_id, run_id) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in api.task_instances(dag_id, run_id)}


def _training_runs(api, pipeline) -> list[dict]:
    return api.runs(plan.training_dag_id(pipeline.name))


def _wait_new_training(api, pipeline, known: set[str], timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in _training_runs(api, pipeline) if r["dag_run_id"] not in known]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError(f"no training run started within {timeout} s")


def _xcom(api, run: dict, task: str):
    return api.xcom(run["dag_id"], run["dag_run_id"], task)


def _checksums(spark, pipeline) -> dict[str, tuple[int, str]]:
    """Every table's (rows, checksum) over its data columns (a write's run id left out)."""
    out = {}
    for key in pipeline.spec.tables:
        if key == "run_log":  # append-only by design: one row per run
            continue
        path = pipeline.table_path(key)
        if delta_io.version(spark, path) is None:
            continue
        df = delta_io.read(spark, path)
        df = df.drop(*[c for c in df.columns if "run_id" in c])
        maps = [f.name for f in df.schema.fields if isinstance(f.dataType, T.MapType)]
        for c in maps:  # maps cannot be hashed: their entries, sorted, as JSON
            df = df.withColumn(c, F.to_json(F.array_sort(F.map_entries(c))))
        out[key] = delta_io.checksum(df)
    return out


@pytest.fixture(scope="module")
def first_days(airflow):
    """D1 (bootstrap → the Asset-triggered first training) and D2 (`lakeloop backfill`),
    through the scheduler."""
    cfg, pipeline, pairs, api, _ = airflow
    life = plan.lifecycle_dag_id(pipeline.name)
    d1 = runs.trigger_day(api, pipeline, D1, timeout=1800)
    assert d1.state == "success", d1
    training = _wait_new_training(api, pipeline, set())
    training = api.wait(training["dag_id"], training["dag_run_id"], timeout=1800)
    known = {r["dag_run_id"] for r in _training_runs(api, pipeline)}
    from lakeloop.cli import main

    args = ["backfill", "--pipeline", "houses", "--start", str(D2), "--end", str(D2)]
    args += ["--env", "test", *[x for p in pairs for x in ("--set", p)]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(args)
    d2 = runs.RunSummary.of(api, runs._run_of(api, life, runs.day_start(pipeline, D2)))
    time.sleep(8)  # an event would start a training run about 1 s after it
    after_d2 = {r["dag_run_id"] for r in _training_runs(api, pipeline)}
    return {
        "d1": d1,
        "d1_tasks": _tis(api, life, d1.run_id),
        "training": training,
        "d2": d2,
        "d2_backfill": (rc, out.getvalue()),
        "d2_tasks": _tis(api, life, d2.run_id),
        "new_training_after_d2": after_d2 - known,
    }


def test_a_new_pipeline_asks_for_its_first_model_and_the_asset_trains_it(airflow, first_days):
    cfg, pipeline, _, api, _ = airflow
    assert first_days["d1_tasks"] == {
        "triggered_only": "success",
        "ingest_files": "success",
        "ingest_kafka": "success",
        "validate": "success",
        "build_features": "success",
        "champion_check": "skipped",
        "predict": "skipped",
        "monitor": "skipped",
        "report": "skipped",
        "retrain_trigger": "success",
    }
    training = first_days["training"]
    assert training["state"] == "success" and training["run_type"] == "asset_triggered"
    assert _xcom(api, training, plan.TRAINING_DATE_TASK) == D1.isoformat()
    [event] = api.asset_events(plan.retrain_uri(pipeline.name))
    assert event["extra"]["date"] == D1.isoformat() and event["extra"]["rule"] == "no_champion"
    client = tracking.configure(cfg)
    champion = tracking.by_alias(client, pipeline.spec.model.name, tracking.CHAMPION)
    assert champion is not None and champion.version == 1
    # the run the scheduler made on its own for the latest interval (conf/test: not scheduled)
    # did nothing: its first task skipped, and everything after it
    life = plan.lifecycle_dag_id(pipeline.name)
    for run in [r for r in api.runs(life) if r["run_type"] == "scheduled"]:
        states = set(_tis(api, life, run["dag_run_id"]).values())
        assert states == {"skipped"}, (run["dag_run_id"], states)


def test_the_next_day_runs_the_whole_lifecycle_with_the_promoted_model(spark, airflow, first_days):
    cfg, pipeline, _, api, _ = airflow
    assert first_days["d2"].state == "success", first_days["d2"]
    tasks = first_days["d2_tasks"]
    assert all(tasks[t] == "success" for t in ("predict", "monitor", "report")), tasks
    # no retrain recommended: the trigger skipped, so no event and no training run
    assert tasks["retrain_trigger"] == "skipped"
    assert first_days["new_training_after_d2"] == set()
    assert len(api.asset_events(plan.retrain_uri(pipeline.name))) == 1
    preds = delta_io.read(spark, pipeline.table_path("predictions"))
    features = delta_io.read(spark, pipeline.table_path("features"))
    by_date = {r[0]: r[1] for r in preds.groupBy("prediction_date").count().collect()}
    # D1 was not scored (no champion then); D2 was, every feature row of the day, by v1
    assert set(by_date) == {D2}
    assert by_date[D2] == features.where(F.col("feature_date") == D2).count() > 0
    assert {r[0] for r in preds.select("model_version").distinct().collect()} == {1}
    decision = delta_io.read(spark, pipeline.table_path("metrics_decisions"))
    assert [r["retrain_recommended"] for r in decision.collect()] == [False]
    # the jobs ran in the pipeline's zone: D2 is the New York day of the run's logical date
    assert decision.first()["run_date"] == D2


def test_backfill_runs_a_date_through_the_scheduler_and_a_rerun_changes_no_table(
    spark, airflow, first_days
):
    cfg, pipeline, pairs, api, _ = airflow
    rc, out = first_days["d2_backfill"]
    assert rc == 0 and "houses_lifecycle" in out and "backfill" in out and "success" in out, out
    assert first_days["d2"].run_type == "backfill"
    before = _checksums(spark, pipeline)
    assert {"bronze_listings", "silver_listings", "features", "predictions"} <= set(before)
    # build_features of D2 again, through the scheduler (its MERGE replaces the date)
    life = plan.lifecycle_dag_id(pipeline.name)
    run_id = first_days["d2"].run_id
    api.clear_tasks(life, run_id, ["build_features"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ti = next(t for t in api.task_instances(life, run_id) if t["task_id"] == "build_features")
        if ti["try_number"] >= 2 and ti["state"] in ("success", "failed"):
            break
        time.sleep(2)
    assert ti["try_number"] >= 2 and ti["state"] == "success", ti
    after = _checksums(spark, pipeline)
    changed = {k: (before.get(k), after[k]) for k in after if before.get(k) != after[k]}
    assert changed == {}, changed


def test_a_retrain_decision_emits_the_asset_with_its_reason_and_starts_training(
    spark, airflow, first_days
):
    cfg, pipeline, _, api, _ = airflow
    path = pipeline.table_path("metrics_decisions")
    row = delta_io.read(spark, path).where(F.col("run_date") == D2)
    reason = "drift: PSI > 0.2 in 2 of the last 3 monitor run(s) (test)"
    forced = row.withColumn("retrain_recommended", F.lit(True)).withColumn("reason", F.lit(reason))
    forced.localCheckpoint().write.format("delta").mode("overwrite").option(
        "replaceWhere", f"run_date = '{D2}'"
    ).save(path)
    life = plan.lifecycle_dag_id(pipeline.name)
    run = runs._run_of(api, life, runs.day_start(pipeline, D2))
    known = {r["dag_run_id"] for r in _training_runs(api, pipeline)}
    api.clear_tasks(life, run["dag_run_id"], [plan.RETRAIN_TASK])
    training = _wait_new_training(api, pipeline, known, timeout=180)
    # the training run trains as of the event's date (then `down` stops it); wait for it to
    # start: Airflow 3.3 answers 500 to GET /assets/events while an event's run is queued
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = _tis(api, training["dag_id"], training["dag_run_id"])
        if states.get(plan.TRAINING_DATE_TASK) == "success":
            break
        time.sleep(2)
    events = api.asset_events(plan.retrain_uri(pipeline.name))
    latest = max(events, key=lambda e: e["timestamp"])
    assert latest["extra"]["date"] == D2.isoformat() and latest["extra"]["reason"] == reason
    assert latest["extra"]["rule"] and latest["source_run_id"] == run["dag_run_id"]
    assert [r["run_id"] for r in latest["created_dagruns"]] == [training["dag_run_id"]]
    assert _xcom(api, training, plan.TRAINING_DATE_TASK) == D2.isoformat()


def test_airflow_up_again_is_a_no_op_and_other_settings_are_refused(airflow):
    cfg, pipeline, pairs, api, started = airflow
    pids = server.status(cfg)["pids"]
    assert server.up(cfg, pairs)["pids"] == pids
    from lakeloop.config import ConfigError

    with pytest.raises(ConfigError, match="runs with other settings.*airflow down"):
        server.up(cfg, [*pairs, "spark.shuffle_partitions=3"])
    print(json.dumps({"airflow_up_s": round(started, 1)}))
