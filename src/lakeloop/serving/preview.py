"""The demo's last step: `lakeloop serve` started for a moment, a few of the day's entities
scored by key (features from the online store), and the answers beside the batch predictions
of the same entities. No JVM: the predictions table is read with delta-rs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lakeloop.config import AppConfig
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0


class PreviewError(RuntimeError):
    """The server did not come up or did not answer."""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, timeout: float = 30.0) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _wait_healthy(url: str, proc: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PreviewError(
                f"`lakeloop serve` exited with {proc.returncode}: see {log_file}\n"
                + log_file.read_text()[-2000:]
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise PreviewError(f"`lakeloop serve` did not answer /health within {START_TIMEOUT_S:.0f} s")


def batch_predictions(pipeline: Pipeline, day: dt.date, n: int) -> list[dict]:
    """`n` rows of the predictions table of `day` (entity key order), read with delta-rs."""
    from deltalake import DeltaTable

    spec = pipeline.spec
    table = DeltaTable(pipeline.table_path(spec.model.predictions))
    keys = spec.entity_keys
    cols = [*keys, "prediction", "model_version"]
    if spec.model.task == "classification":
        cols.append("probability")
    df = table.to_pandas(columns=cols, filters=[("prediction_date", "=", day)])
    df = df[df["prediction"].notna()].sort_values(keys).head(n)
    return df.to_dict("records")


def online_preview(
    cfg: AppConfig, pipeline: Pipeline, day: dt.date, set_pairs: list[str], n: int = 5
) -> str:
    """Start `lakeloop serve` on a free loopback port, score `n` entities of `day` by key,
    stop it; a text table of batch vs online scores."""
    rows = batch_predictions(pipeline, day, n)
    if not rows:
        return f"  online: no predictions of {day} to compare with"
    host = "127.0.0.1"
    port = free_port(host)
    url = f"http://{host}:{port}"
    log_file = cfg.path(".serving") / "preview-serve.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    spec_ref = str(pipeline.source_file) if pipeline.source_file else pipeline.name
    cmd = [sys.executable, "-m", "lakeloop.cli", "serve", "--pipeline", spec_ref]
    cmd += ["--host", host, "--port", str(port), "--env", cfg.env]
    for pair in set_pairs:
        cmd += ["--set", pair]
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cfg.project_root, start_new_session=True
        )
    try:
        _wait_healthy(url, proc, log_file)
        keys = [{k: r[k] for k in pipeline.spec.entity_keys} for r in rows]
        status, body = _post(f"{url}/v1/predict/by-key", {"keys": keys})
        if status != 200:
            raise PreviewError(f"POST /v1/predict/by-key answered {status}: {body}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return render(pipeline, day, rows, body, url)


def render(pipeline: Pipeline, day: dt.date, rows: list[dict], body: dict, url: str) -> str:
    keys = pipeline.spec.entity_keys
    out = [
        f"  online scoring (`lakeloop serve` on {url}, stopped again): {len(rows)} entities "
        f"of {day} by key, features from the online store",
        f"    {'/'.join(keys):<16} {'batch':>14} {'online':>14} {'model':>14}  rel. diff",
    ]
    for r, p in zip(rows, body.get("predictions", []), strict=False):
        key = "/".join(str(r[k]) for k in keys)
        if "prediction" not in p:
            out.append(f"    {key:<16} {r['prediction']:>14.6g} {'-':>14}  {p.get('error', p)}")
            continue
        a, b = float(r["prediction"]), float(p["prediction"])
        diff = abs(a - b) / max(1.0, abs(a))
        model = f"v{r['model_version']} / v{p.get('model_version')}"
        same = "" if str(r["model_version"]) == str(p.get("model_version")) else " (other model)"
        out.append(f"    {key:<16} {a:>14.6g} {b:>14.6g} {model:>14}  {diff:.1e}{same}")
    return "\n".join(out)
