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


class ServeProcess:
    """`lakeloop serve` as a child process on a free loopback port, its output in `log_file`:
    `start` waits for GET /health 200, `stop` ends its process group by pid (SIGTERM, then
    SIGKILL after `wait_s`). The demo's preview and bench/serve.py run the server so."""

    def __init__(
        self,
        spec_ref: str,
        env_name: str,
        set_pairs: list[str],
        log_file: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log_file, self.cwd, self.env = log_file, cwd, env
        self.cmd = [sys.executable, "-m", "lakeloop.cli", "serve", "--pipeline", spec_ref]
        self.cmd += ["--host", host, "--port", str(self.port), "--env", env_name]
        for pair in set_pairs:
            self.cmd += ["--set", pair]
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start it and wait until /health answers 200: the seconds that took. PreviewError
        (with the end of its output) when it exits or does not answer in time."""
        t = time.monotonic()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        last = "no answer"
        while time.monotonic() < t + timeout_s:
            if self.proc.poll() is not None:
                raise PreviewError(
                    f"`lakeloop serve` exited with {self.proc.returncode} before /health "
                    f"answered 200; its output ({self.log_file}):\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - t
                    last = str(r.status)
            except urllib.error.HTTPError as e:
                last = f"{e.code} {e.read()[:300].decode(errors='replace')}"
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.2)
        raise PreviewError(
            f"`lakeloop serve` did not answer /health 200 within {timeout_s:.0f} s (last: "
            f"{last}); its output ({self.log_file}):\n{self.tail()}"
        )

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no output)"

    def stop(self, wait_s: float = 30.0) -> str:
        """SIGTERM, wait; SIGKILL after `wait_s`. What happened, for a log line."""
        if self.proc is None or self.proc.poll() is not None:
            return "not running"
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(wait_s)
            return f"stopped, exit {self.proc.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return f"did not stop within {wait_s:.0f} s: killed"


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
    spec_ref = str(pipeline.source_file) if pipeline.source_file else pipeline.name
    log_file = cfg.path(".serving") / "preview-serve.log"
    server = ServeProcess(spec_ref, cfg.env, set_pairs, log_file, cfg.project_root)
    try:
        server.start()
        keys = [{k: r[k] for k in pipeline.spec.entity_keys} for r in rows]
        status, body = _post(f"{server.url}/v1/predict/by-key", {"keys": keys})
        if status != 200:
            raise PreviewError(f"POST /v1/predict/by-key answered {status}: {body}")
    finally:
        server.stop()
    return render(pipeline, day, rows, body, server.url)


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
