"""The DAGs' Python tasks and plan: the retrain trigger reads the monitor's real decision rows
(a Delta table written by Spark, read with delta-rs), the training date, the plan per spec."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lakeloop import delta_io
from lakeloop.config import load_config
from lakeloop.ml import tracking
from lakeloop.monitoring.tables import DECISIONS_SCHEMA
from lakeloop.orchestration import decision, plan, tasks
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT, spec_variant

D = dt.date(2026, 3, 2)
URI = "lakeloop://houses/retrain"


class Events(dict):
    """outlet_events as the task sees it: an accessor per Asset with a settable `extra`."""

    def __missing__(self, asset):
        self[asset] = SimpleNamespace(extra={})
        return self[asset]


@pytest.fixture
def houses_ml(tmp_path):
    cfg = load_config(
        "test",
        {
            "lakehouse_root": str(tmp_path / "lake"),
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        },
        project_root=ROOT,
    )
    pipeline = load_pipeline(cfg, "houses")
    pairs = [
        f"lakehouse_root={tmp_path / 'lake'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    return pipeline, pairs


def _decide(spark, pipeline, recommended: bool, reason: str, day=D):
    row = (
        day,
        "run-1",
        "houses_price",
        3,
        recommended,
        "drift" if recommended else "none",
        not recommended,
        reason,
        "{}",
        dt.date(2026, 2, 20),
    )
    df = spark.createDataFrame([row], DECISIONS_SCHEMA)
    delta_io.replace_partition(
        df, pipeline.table_path("metrics_decisions"), "run_date", day.isoformat(), "run-1"
    )


def _trigger(pipeline, pairs, events, day=D):
    return tasks.retrain_trigger(
        spec_ref=str(pipeline.source_file),
        env="test",
        set_pairs=pairs,
        date=day.isoformat(),
        retrain_uri=URI,
        outlet_events=events,
    )


def _champion(pipeline, version_source):
    client = tracking.configure(pipeline.cfg)
    name = pipeline.spec.model.name
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=version_source)
    client.set_registered_model_alias(name, tracking.CHAMPION, mv.version)


def test_a_recommended_decision_emits_the_retrain_asset_with_its_reason(spark, houses_ml):
    pipeline, pairs = houses_ml
    _decide(spark, pipeline, True, "drift: PSI > 0.2 for sqft in 2 of the last 3 runs")
    events = Events()
    extra = _trigger(pipeline, pairs, events)
    assert extra["date"] == D.isoformat() and extra["rule"] == "drift"
    assert extra["reason"].startswith("drift: PSI > 0.2 for sqft")
    assert events[Asset(name=URI, uri=URI)].extra == extra  # what the event carries


def test_no_recommendation_skips_so_no_event_is_emitted(spark, houses_ml):
    pipeline, pairs = houses_ml
    _decide(spark, pipeline, False, "no rule fired")
    events = Events()
    with pytest.raises(AirflowSkipException, match=r"no retrain for 2026-03-02 \(in cooldown\)"):
        _trigger(pipeline, pairs, events)
    assert all(e.extra == {} for e in events.values())


def test_a_missing_decision_asks_for_the_first_model_only_when_there_is_no_champion(
    spark, houses_ml, tmp_path
):
    pipeline, pairs = houses_ml
    events = Events()
    extra = _trigger(pipeline, pairs, events)  # no decisions table, no model
    assert extra["rule"] == "no_champion" and "no champion yet" in extra["reason"]
    _champion(pipeline, str(tmp_path))
    with pytest.raises(AirflowFailException, match="does not exist.*monitor has not run"):
        _trigger(pipeline, pairs, Events())
    _decide(spark, pipeline, False, "no rule fired", day=D - dt.timedelta(days=1))
    with pytest.raises(AirflowFailException, match="no decision for 2026-03-02.*run the monitor"):
        _trigger(pipeline, pairs, Events())
    assert tasks.champion_check(str(pipeline.source_file), "test", pairs) == "1"


def test_champion_check_skips_scoring_without_a_champion(houses_ml):
    pipeline, pairs = houses_ml
    with pytest.raises(AirflowSkipException, match="no champion yet"):
        tasks.champion_check(str(pipeline.source_file), "test", pairs)


def test_decision_reads_the_row_of_its_date(spark, houses_ml):
    pipeline, _ = houses_ml
    _decide(spark, pipeline, True, "quality: rmse 30% worse")
    _decide(spark, pipeline, False, "no rule fired", day=D + dt.timedelta(days=1))
    d = decision.read(pipeline, D)
    assert (d.run_date, d.recommended, d.model_version, d.reason) == (
        D,
        True,
        "3",
        "quality: rmse 30% worse",
    )
    assert decision.read(pipeline, D + dt.timedelta(days=1)).recommended is False


def test_training_date_is_the_latest_event_date_else_the_local_day():
    ev = SimpleNamespace
    events = {
        "a": [ev(extra={"date": "2026-03-01"}), ev(extra={"date": "2026-03-03"})],
        "b": [ev(extra={})],
    }
    assert tasks.training_date("UTC", triggering_asset_events=events) == "2026-03-03"
    tokyo_midnight = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
    assert tasks.training_date("Asia/Tokyo", {}, logical_date=tokyo_midnight) == "2026-03-05"
    with pytest.raises(ValueError, match="logical date or a retrain Asset event"):
        tasks.training_date("UTC", {}, logical_date=None)


def test_the_plan_follows_what_the_spec_has(cfg, tmp_path):
    def no_kafka_no_model(d):
        d["sources"]["kafka"] = []
        d["expectations"] = [e for e in d["expectations"] if e["source"] != "bronze_sales"]
        for k in ("label", "model", "monitoring", "retrain", "serving"):
            d.pop(k, None)

    p, _ = spec_variant(cfg, tmp_path, no_kafka_no_model)
    assert [t.job for t in plan.lifecycle_tasks(p.spec)] == [
        "ingest_files",
        "validate",
        "build_features",
    ]
    assert plan.training_tasks(p.spec) == []
    full = load_pipeline(cfg, "houses").spec
    jobs = {t.job: t for t in plan.lifecycle_tasks(full)}
    assert jobs["validate"].upstream == ("ingest_files", "ingest_kafka")
    assert not jobs[plan.CHAMPION_TASK].spark and jobs["predict"].upstream == (plan.CHAMPION_TASK,)
    # serving: the online store follows the feature table (beside scoring, not after it)
    assert jobs["materialize"].upstream == ("build_features",)
    # two file sources feed one bronze table: one Asset
    assert len(jobs["ingest_files"].writes) == len(set(jobs["ingest_files"].writes))
