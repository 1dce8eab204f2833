"""`serve` as a real process: uvicorn on a free port (port 0, the bound address read from its
log), the champion loaded from the registry without a JVM, a request answered over HTTP with
Spark's scores, then SIGTERM: a clean stop writes the queued request-log rows to the Delta
table (the batch size and flush time are set so only the stop can have written them)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakeloop.ml import tracking
from tests.conftest import ROOT
from tests.unit.serving.test_app import (
    RECORDS,
    REG,
    Registry,
    fit,
    ml_config,
    register,
    spark_scores,
)

ADDRESS = re.compile(r"serving houses \(model houses_online\) on (http://127\.0\.0\.1:\d+)")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def _wait_for(what: str, proc: subprocess.Popen, log_file, condition, timeout_s: float = 45.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}): {log_file.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"{what} not within {timeout_s} s: {log_file.read_text()[-3000:]}")


def test_serve_answers_over_http_and_a_sigterm_loses_no_logged_row(spark, tmp_path):
    overrides = {"log_batch_rows": 10_000, "log_flush_s": 3600, "poll_interval_s": 3600}
    cfg = ml_config(tmp_path, **overrides)
    reg = Registry(cfg, tmp_path, tracking.configure(cfg))
    model, schema = fit(spark, REG, seed=1)
    version = register(reg, REG, model, schema)
    reg.aliases(REG["name"], champion=version)
    pipeline = reg.pipeline(REG, 0.0)
    expected = [p for p, _ in spark_scores(spark, model, RECORDS)]

    # the command a user runs, on a free port (0), with this test's config as --set pairs
    cmd = [sys.executable, "-m", "lakeloop.cli", "serve", "--pipeline", str(pipeline.source_file)]
    cmd += ["--host", "127.0.0.1", "--port", "0", "--env", "test"]
    for pair in _set_pairs(_overrides(tmp_path, overrides)):
        cmd += ["--set", pair]
    log_file = tmp_path / "serve.log"
    with open(log_file, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        url = _wait_for(
            "the bound address",
            proc,
            log_file,
            lambda: (m := ADDRESS.search(log_file.read_text())) and m.group(1),
        )
        _wait_for("GET /health 200", proc, log_file, lambda: _get(f"{url}/health") == 200)
        req = urllib.request.Request(
            f"{url}/v1/predict",
            data=json.dumps({"records": RECORDS}).encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": "it-1"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        assert [p["prediction"] for p in body["predictions"]] == pytest.approx(expected, rel=1e-9)
        assert body["model"] == {"name": REG["name"], "version": version, "alias": "champion"}
        table = pipeline.table_path(pipeline.spec.serving.log_table)
        assert not os.path.exists(table)  # queued, not written: the batch is far from full
        # no JVM: PySpark starts one as a child process, as this test process's shows
        assert any("java" in c for c in _children(os.getpid()))
        assert _children(proc.pid) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log_file.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "request log closed: 3 rows written, 0 in fallback files, 0 lost" in text, text[-3000:]
    rows = DeltaTable(table).to_pyarrow_table().to_pylist()
    assert sorted((r["request_id"], r["record_index"], r["status"]) for r in rows) == [
        ("it-1", i, "ok") for i in range(3)
    ]
    assert [r["prediction"] for r in sorted(rows, key=lambda r: r["record_index"])] == (
        pytest.approx(expected, rel=1e-9)
    )


def _children(pid: int) -> list[str]:
    """The command lines of `pid`'s child processes."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append((stat.parent / "cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return out


def _set_pairs(tree: dict, prefix: str = "") -> list[str]:
    """`--set key.path=value` pairs of a nested overrides dict."""
    pairs = []
    for k, v in tree.items():
        if isinstance(v, dict):
            pairs += _set_pairs(v, f"{prefix}{k}.")
        else:
            pairs.append(f"{prefix}{k}={v}")
    return pairs


def _overrides(tmp_path, serving: dict) -> dict:
    """The same config as `ml_config(tmp_path, **serving)`, as load_config overrides."""
    cfg = ml_config(tmp_path, **serving)
    return {
        "lakehouse_root": cfg.lakehouse_root,
        "mlflow": {"tracking_uri": cfg.mlflow.tracking_uri, "artifact_root": str(tmp_path / "art")},
        "serving": json.loads(cfg.serving.model_dump_json()),
    }
