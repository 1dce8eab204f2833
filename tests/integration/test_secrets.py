"""A secret given through the environment (named by `--set` overrides) never shows: not on
stdout or stderr, not in the run log, MLflow params/tags/artifacts, nor in the reports."""

import json
import os
import subprocess
import sys

from lakeloop import delta_io, runlog
from lakeloop.ml import tracking
from tests.conftest import ROOT, spec_variant
from tests.integration.test_train_predict import CLASSIFIER, _synthetic, ml_config

SECRET = "Zq9-secret-VALUE-7f3k"


def _files_containing(folder, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(path)
    return hits


def test_a_secret_from_the_environment_appears_nowhere(spark, tmp_path):
    cfg = ml_config(tmp_path)
    p, spec_file = spec_variant(cfg, tmp_path, lambda d: d.update(model=CLASSIFIER))
    _synthetic(spark, p)
    sets = {
        "lakehouse_root": str(p.root),
        "mlflow.tracking_uri": cfg.mlflow.tracking_uri,
        "mlflow.artifact_root": str(cfg.mlflow.artifact_root),
        # the secret reaches Spark (an S3A key) and the Kafka client config (SASL password)
        "spark.extra_conf_env.spark.hadoop.fs.s3a.secret.key": "LL_TEST_SECRET",
        "kafka.sasl_password_env": "LL_TEST_SECRET",
    }
    args = [sys.executable, "-m", "lakeloop.cli", "run", "train", "--pipeline", str(spec_file)]
    args += ["--date", "2026-03-01", "--env", "test"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    env = {**os.environ, "LL_TEST_SECRET": SECRET, "LAKELOOP_HOME": str(ROOT)}
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    # the overrides were applied (their env var name is logged), the value never
    assert "LL_TEST_SECRET" in out.stderr and "promoted" in out.stdout
    assert SECRET not in out.stdout and SECRET not in out.stderr

    log = delta_io.read(spark, p.table_path("run_log")).where("job = 'train'")  # every row
    rows = [json.dumps(r.asDict(recursive=True), default=str) for r in log.collect()]
    assert runlog.runs(spark, p).where("job = 'train'").count() == 1
    assert rows and all(SECRET not in r for r in rows)

    client = tracking.configure(p.cfg)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    for run in runs:
        assert SECRET not in json.dumps([run.data.params, run.data.tags])
    assert _files_containing(cfg.mlflow.artifact_root, SECRET.encode()) == []
    reports = p.local_root / "reports"
    assert any(reports.rglob("*.md"))
    assert _files_containing(reports, SECRET.encode()) == []
