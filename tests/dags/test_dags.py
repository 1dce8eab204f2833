"""The DAG file's integrity and policies (after the astro template's DAG integrity test): every
spec gives DAGs with zero import errors; every task retries, has a time limit and the Spark
pool; the DAG files import no Spark and no job code, read no clock; the schedule, retries,
time limits and owner come from the spec; a bad spec is an import error naming its key."""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakeloop.config import ConfigError, load_config
from lakeloop.orchestration import plan
from lakeloop.spec import load_pipeline
from tests.dags.conftest import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
FACTORY = ROOT / "src/lakeloop/orchestration/dags.py"
SPECS = sorted(p.stem for p in (ROOT / "conf/pipelines").glob("*.yaml"))


@pytest.fixture
def bag(dag_env):
    return dag_env()


def test_every_spec_gives_its_dags_with_no_import_error(bag):
    assert bag.import_errors == {}
    expected = {plan.lifecycle_dag_id(s) for s in SPECS} | {plan.training_dag_id(s) for s in SPECS}
    assert set(bag.dag_ids) == expected


def test_lifecycle_order_and_assets(bag):
    dag = bag.dags["houses_lifecycle"]
    up = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    assert up == {
        # conf/test: airflow.scheduled false, so the scheduler's own runs are skipped first
        "triggered_only": set(),
        "ingest_files": {"triggered_only"},
        "ingest_kafka": {"triggered_only"},
        "validate": {"ingest_files", "ingest_kafka"},
        "build_features": {"validate"},
        "champion_check": {"build_features"},
        "predict": {"champion_check"},
        "monitor": {"predict"},
        "report": {"monitor"},
        "retrain_trigger": {"report", "build_features"},
        # serving: the online store follows the feature table, beside scoring
        "materialize": {"build_features"},
    }
    outlets = {t.task_id: {a.uri for a in t.outlets} for t in dag.tasks}
    assert outlets["ingest_kafka"] == {
        "lakeloop://houses/bronze.houses_sales",
        "lakeloop://houses/bronze.houses_dead_letter",
    }
    assert "lakeloop://houses/predictions.houses_listings" in outlets["predict"]
    assert "lakeloop://houses/metrics.houses_decisions" in outlets["monitor"]
    assert outlets["retrain_trigger"] == {"lakeloop://houses/retrain"}
    assert outlets["materialize"] == {"lakeloop://houses/online_store"}
    # the retrain trigger runs after a skipped scoring (no champion yet), not after a failure
    # nor when everything was skipped
    assert dag.get_task("retrain_trigger").trigger_rule == "none_failed_min_one_success"

    training = bag.dags["houses_training"]
    assert [a.uri for a in training.timetable.asset_condition.objects] == [
        "lakeloop://houses/retrain"
    ]
    assert {t.task_id: set(t.upstream_task_ids) for t in training.tasks} == {
        "training_date": set(),
        "build_training_set": {"training_date"},
        "train": {"build_training_set"},
    }
    assert "lakeloop://houses/models/houses_price" in {
        a.uri for a in training.get_task("train").outlets
    }


def test_every_task_retries_has_a_time_limit_and_spark_tasks_take_the_pool(bag):
    cfg = load_config("test", {"lakehouse_root": "/tmp/unused"}, project_root=ROOT)
    for dag in bag.dags.values():
        for t in dag.tasks:
            where = f"{dag.dag_id}.{t.task_id}"
            assert t.retries >= 1, where
            assert t.retry_exponential_backoff, where
            assert t.execution_timeout is not None, where
            if t.task_type == "SparkSubmitOperator":
                assert t.pool == cfg.airflow.pool, where
                assert t._conn_id == cfg.airflow.spark_conn_id, where
                assert Path(t.application).is_file(), where
                args = t.application_args
                date = args[args.index("--date") + 1]
                # the run's logical date (a template), never the wall clock
                assert "logical_date" in date or "xcom_pull" in date, where
                assert args[args.index("--env") + 1] == "test", where
                assert any(a.startswith("lakehouse_root=") for a in args), where
                # the driver is spark-submit's JVM: the profile's options on its command
                java = t.conf["spark.driver.extraJavaOptions"]
                assert java == cfg.spark.driver_java_options and "TieredStopAtLevel" in java


def test_schedule_retries_timeouts_and_owner_come_from_the_spec(dag_env, tmp_path, monkeypatch):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    spec = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    spec["timezone"] = "Asia/Tokyo"
    spec["schedule"] = {
        "cron": "30 2 * * *",
        "start_date": "2026-03-01",
        "owner": "pricing-team",
        "retries": 4,
        "retry_delay_s": 30,
        "timeout_min": 20,
        "job_timeout_min": {"train": 90},
        "training": {"cron": "0 4 * * 0"},
        "tags": ["pricing"],
    }
    (pipelines / "houses.yaml").write_text(yaml.safe_dump(spec))
    sets = [f"lakehouse_root={tmp_path / 'lake'}", f"pipelines_dir={pipelines}"]
    monkeypatch.setenv("LAKELOOP_SET", json.dumps([*sets, "airflow.scheduled=true"]))
    bag = dag_env()
    assert bag.import_errors == {}
    life, training = bag.dags["houses_lifecycle"], bag.dags["houses_training"]
    assert life.timetable.expression == "30 2 * * *"
    assert str(life.timetable.timezone) == "Asia/Tokyo"
    assert life.start_date == dt.datetime(2026, 2, 28, 15, 0, tzinfo=dt.UTC)  # Tokyo midnight
    assert "pricing" in life.tags
    ingest = life.get_task("ingest_files")
    assert (ingest.owner, ingest.retries) == ("pricing-team", 4)
    assert ingest.retry_delay == dt.timedelta(seconds=30)
    assert ingest.execution_timeout == dt.timedelta(minutes=20)
    assert training.get_task("train").execution_timeout == dt.timedelta(minutes=90)
    # its own cron, or the retrain Asset
    assert training.timetable.timetable.expression == "0 4 * * 0"
    assert training.timetable.asset_condition.uri == "lakeloop://houses/retrain"
    assert "triggered_only" not in life.task_ids  # scheduled: the cron's runs do the work
    # airflow.scheduled false (conf/test, the demo): the cron stays (backfills need it), a run
    # the scheduler creates on it is skipped by the first task; training on the Asset only
    monkeypatch.setenv("LAKELOOP_SET", json.dumps(sets))
    unscheduled = dag_env()
    assert unscheduled.dags["houses_lifecycle"].timetable.expression == "30 2 * * *"
    assert "triggered_only" in unscheduled.dags["houses_lifecycle"].task_ids
    assert not hasattr(unscheduled.dags["houses_training"].timetable, "timetable")


def test_the_date_is_the_day_in_the_pipelines_zone():
    from lakeloop.orchestration.dags import local_ds

    # Tokyo midnight of Mar 2 is Mar 1 15:00 UTC: `{{ ds }}` would say Mar 1
    tokyo = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC)
    assert local_ds(tokyo, "Asia/Tokyo") == "2026-03-02"
    assert local_ds(tokyo.isoformat(), "UTC") == "2026-03-01"
    ny = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC)
    assert local_ds(ny, "America/New_York") == "2026-03-02"
    with pytest.raises(ValueError, match="trigger it with a logical date"):
        local_ds(None, "UTC")


def test_a_bad_spec_is_an_import_error_naming_the_file_and_key(dag_env, tmp_path, monkeypatch):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    spec = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    spec["schedule"] = {"cron": "every day", "retries": -1}
    (pipelines / "houses.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv(
        "LAKELOOP_SET",
        json.dumps([f"lakehouse_root={tmp_path / 'lake'}", f"pipelines_dir={pipelines}"]),
    )
    bag = dag_env()
    [(_, error)] = bag.import_errors.items()
    assert "houses.yaml" in error and "schedule.cron" in error and "schedule.retries" in error
    assert "not a cron expression" in error


def test_schedule_section_is_validated_with_the_spec(tmp_path):
    cfg = load_config("test", {"lakehouse_root": str(tmp_path)}, project_root=ROOT)
    spec = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    spec["schedule"] = {"job_timeout_min": {"trian": 5}}
    path = tmp_path / "houses.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"schedule.job_timeout_min.*unknown job.*trian"):
        load_pipeline(cfg, str(path))


@pytest.mark.parametrize("path", [*DAG_FILES, FACTORY], ids=lambda p: p.name)
def test_dag_code_imports_no_spark_or_job_code_and_reads_no_clock(path):
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    banned = ("pyspark", "delta", "py4j", "lakeloop.jobs", "lakeloop.session", "mlflow")
    assert not [n for n in names if n.startswith(banned)], names
    calls = [
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    ]
    assert not {"now", "utcnow", "today"} & set(calls)


def test_parsing_the_dag_file_starts_no_spark_and_loads_no_job_module(tmp_path):
    """In a fresh interpreter, as the dag-processor parses: no pyspark.sql, no job module."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.startswith(('pyspark.sql', 'lakeloop.jobs', "
        "'py4j.java_gateway', 'great_expectations'))]; print('BAD', bad)"
    )
    env = {
        "LAKELOOP_HOME": str(ROOT),
        "LAKELOOP_ENV": "test",
        "LAKELOOP_SET": json.dumps([f"lakehouse_root={tmp_path}"]),
        "AIRFLOW_HOME": str(tmp_path / "af"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": "/usr/bin:/bin",
    }
    r = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags/lakeloop_dags.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "BAD []" in r.stdout, r.stdout[-2000:]


def test_the_guard_skips_only_the_runs_the_scheduler_creates_itself():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.utils.types import DagRunType

    from lakeloop.orchestration.dags import _triggered_only

    with pytest.raises(AirflowSkipException, match="only when triggered"):
        _triggered_only(dag_run=SimpleNamespace(run_type=DagRunType.SCHEDULED))
    for kind in (DagRunType.MANUAL, DagRunType.BACKFILL_JOB, DagRunType.ASSET_TRIGGERED):
        assert _triggered_only(dag_run=SimpleNamespace(run_type=kind)) is None
