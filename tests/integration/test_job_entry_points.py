"""Every job runs as `spark-submit jobs/<job>.py` and as `lakeloop run <job>`: same code."""

import ast
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeloop import delta_io
from lakeloop.cli import JOBS
from lakeloop.generate import houses as gen
from tests.conftest import ROOT

VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("job", JOBS)
def test_job_files_are_thin_entry_points(job):
    tree = ast.parse((ROOT / "jobs" / f"{job}.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(n.module == f"lakeloop.jobs.{job}" and n.names[0].name == "main" for n in imports)
    assert len([n for n in tree.body if isinstance(n, ast.FunctionDef)]) == 0


def test_spark_submit_runs_a_job_and_reports_errors_clearly(spark, houses, tmp_path):
    gen.generate(houses, start=dt.date(2026, 1, 1), days=1, rows_per_day=50, produce=False)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "LAKELOOP_HOME": str(ROOT),
        # the test profile's loopback pin, handed to spark-submit's JVM as the deployment does
        "SPARK_LOCAL_IP": houses.cfg.spark.local_ip,
    }
    base = [
        "spark-submit",
        "--master",
        "local[1]",
        "--driver-java-options",
        houses.cfg.spark.driver_java_options,
        str(ROOT / "jobs/ingest_files.py"),
        "--pipeline",
        "houses",
        "--env",
        "test",
        "--set",
        f"lakehouse_root={houses.root}",
    ]
    ok = subprocess.run(
        [*base, "--date", "2026-01-01"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "ingest_files succeeded" in ok.stdout + ok.stderr  # spark-submit merges them
    assert "resolves to a loopback address" not in ok.stderr
    assert delta_io.read(spark, houses.table_path("bronze_listings")).count() == 50
    bad = subprocess.run(
        [*base, "--date", "2026-02-30"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert bad.returncode != 0 and "not a YYYY-MM-DD date" in bad.stdout + bad.stderr
    # under spark-submit the jars are the deployment's (--jars / spark.jars): none given is a
    # clear config error (exit 2) naming the missing classes, before any data is touched
    no_jars = subprocess.run(
        [*base[:5], "--conf", "spark.jars=", *base[5:], "--date", "2026-01-01"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    out = no_jars.stdout + no_jars.stderr
    assert no_jars.returncode == 2, out[-3000:]
    assert "lacks io.delta.sql.DeltaSparkSessionExtension" in out and "--jars" in out


def test_lakeloop_run_reports_missing_input_with_exit_code_1(spark, houses, caplog):
    from lakeloop.cli import main

    rc = main(
        [
            "run",
            "ingest_files",
            "--pipeline",
            "houses",
            "--date",
            "2031-05-05",
            "--env",
            "test",
            "--set",
            f"lakehouse_root={houses.root}",
        ]
    )
    assert rc == 1
    assert "no files match" in caplog.text and "2031-05-05" in caplog.text
    log = delta_io.read(spark, houses.table_path("run_log"))
    assert log.where("status = 'failed' and run_date = '2031-05-05'").count() == 1
