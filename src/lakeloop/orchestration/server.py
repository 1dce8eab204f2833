"""The project's own Airflow: `lakeloop airflow up|down|status` (and `make airflow-up` ...).

AIRFLOW_HOME inside the project (`airflow.home`, git-ignored), SQLite metadata (or the URL in
`airflow.sql_alchemy_conn_env`), LocalExecutor with `airflow.parallelism` workers, no
examples, the project's DAGs unpaused at creation. `up` runs `airflow db migrate` and
`airflow dags reserialize`, then starts the api-server and the scheduler as background
processes on `airflow.host` (each its own session and process group, pid files and logs under
the home), waits for the health endpoint, and creates the Spark pool. `down` sends SIGTERM to
each process group, waits, then SIGKILLs what is left, so that no worker or spark-submit
outlives it. `up` is idempotent: when both answer with the same settings it only reserializes
the DAGs; running with other settings is an error that says to stop it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lakeloop.config import AppConfig, ConfigError
from lakeloop.orchestration import plan
from lakeloop.procs import live_pid

log = logging.getLogger(__name__)

PROCESSES = ("api-server", "scheduler")  # started in this order, stopped in reverse
STOP_GRACE_S = 30.0
INSTANCE_ENV = "LAKELOOP_AIRFLOW_INSTANCE"


class AirflowError(RuntimeError):
    """Airflow could not be started, reached or stopped; the message says what to look at."""


def home(cfg: AppConfig) -> Path:
    return cfg.path(cfg.airflow.home)


def base_url(cfg: AppConfig) -> str:
    return f"http://{cfg.airflow.host}:{cfg.airflow.port}"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def environment(cfg: AppConfig, set_pairs: list[str]) -> dict[str, str]:
    """The environment of every Airflow process (and so of every task and spark-submit)."""
    h = home(cfg)
    a = cfg.airflow
    conn = {"conn_type": "spark", "host": plan.spark_master(cfg)}
    env = {
        "AIRFLOW_HOME": str(h),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.path(a.dags_folder)),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(a.parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url(cfg)}/execution/",
        # a local instance bound to the loopback (or the configured host): everyone is admin
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": a.host,
        "AIRFLOW__API__PORT": str(a.port),
        "AIRFLOW__API__BASE_URL": base_url(cfg),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        f"AIRFLOW_CONN_{a.spark_conn_id.upper()}": json.dumps(conn),
        "LAKELOOP_HOME": str(cfg.project_root),
        "LAKELOOP_ENV": cfg.env,
        "LAKELOOP_SET": json.dumps(set_pairs),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        # marks every process of this instance (tasks, spark-submits, JVMs inherit it): what
        # `down` looks for; a shell that only exports AIRFLOW_HOME is never matched
        INSTANCE_ENV: str(h),
    }
    if a.sql_alchemy_conn_env:
        url = cfg.secret(a.sql_alchemy_conn_env)
        assert url is not None
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = url.get_secret_value()
    else:
        # wait up to 30 s for SQLite's write lock (the default 5 s fails requests while the
        # scheduler writes on a busy machine)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{h / 'airflow.db'}?timeout=30"
    if cfg.spark.local_ip:  # the profile's pin (dev/test), for the tasks' spark-submit JVMs
        env["SPARK_LOCAL_IP"] = cfg.spark.local_ip
    return env


def _fingerprint(env: dict[str, str]) -> str:
    keep = {k: v for k, v in env.items() if k != "PATH"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _pid_file(cfg: AppConfig, name: str) -> Path:
    return home(cfg) / f"{name}.pid"


def _pid(cfg: AppConfig, name: str) -> int | None:
    return live_pid(_pid_file(cfg, name), b"airflow")


def _run(cmd: list[str], env: dict[str, str], what: str, timeout: float = 600) -> None:
    full = {**os.environ, **env}
    r = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise AirflowError(f"{what} failed (exit {r.returncode}):\n{tail}")


def _health(cfg: AppConfig, attempts: int = 3) -> dict[str, Any] | None:
    """The api-server's health answer, or None when it does not answer (a busy api-server on
    a loaded machine gets three tries of 10 s)."""
    import httpx

    for attempt in range(attempts):
        try:
            r = httpx.get(f"{base_url(cfg)}/api/v2/monitor/health", timeout=10)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        if attempt + 1 < attempts:
            time.sleep(1)
    return None


def status(cfg: AppConfig) -> dict[str, Any]:
    health = _health(cfg)
    state_file = home(cfg) / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    scheduler = (health or {}).get("scheduler", {}).get("status")
    return {
        "url": base_url(cfg),
        "home": str(home(cfg)),
        "pids": {n: _pid(cfg, n) for n in PROCESSES},
        "api_server": "healthy" if health else "not answering",
        "scheduler": scheduler or "unknown",
        "env": state.get("env"),
        "set": state.get("set", []),
        "running": bool(health) and all(_pid(cfg, n) for n in PROCESSES),
    }


def _start(cfg: AppConfig, name: str, args: list[str], env: dict[str, str]) -> int:
    logs = home(cfg) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{name}.out").open("ab")
    p = subprocess.Popen(
        [_bin("airflow"), *args],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: `down` stops it and its children
        cwd=str(cfg.project_root),
    )
    _pid_file(cfg, name).write_text(str(p.pid))
    log.info("airflow %s started (pid %d, log %s)", name, p.pid, logs / f"{name}.out")
    return p.pid


def _wait(cfg: AppConfig, what: str, ok: Any, timeout: float, log_name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(1)
    logf = home(cfg) / "logs" / f"{log_name}.out"
    tail = logf.read_text(errors="replace").splitlines()[-20:] if logf.is_file() else []
    raise AirflowError(f"{what} within {timeout:.0f} s; last lines of {logf}:\n" + "\n".join(tail))


def up(cfg: AppConfig, set_pairs: list[str] | None = None) -> dict[str, Any]:
    """Start (or find running) the api-server + scheduler; see the module doc."""
    set_pairs = list(set_pairs or [])
    env = environment(cfg, set_pairs)
    h = home(cfg)
    h.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(env)
    state_file = h / "state.json"
    running = status(cfg)
    if running["running"]:
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
        if state.get("fingerprint") != fp:
            raise ConfigError(
                f"Airflow at {base_url(cfg)} runs with other settings (env {state.get('env')}, "
                f"--set {state.get('set')}): stop it with `lakeloop airflow down` first"
            )
        _run([_bin("airflow"), "dags", "reserialize"], env, "airflow dags reserialize")
        return status(cfg)
    for name in PROCESSES:  # a half-started instance: stop what is left before starting
        if _pid(cfg, name):
            down(cfg)
            break
    t0 = time.monotonic()
    _run([_bin("airflow"), "db", "migrate"], env, "airflow db migrate")
    _run([_bin("airflow"), "dags", "reserialize"], env, "airflow dags reserialize")
    log.info("airflow metadata ready in %.0f s", time.monotonic() - t0)
    _start(cfg, "api-server", ["api-server"], env)
    _wait(
        cfg,
        f"the api-server did not answer on {base_url(cfg)}",
        lambda: _health(cfg, attempts=1) is not None,
        cfg.airflow.start_timeout_s,
        "api-server",
    )
    from lakeloop.orchestration.api import AirflowApi

    AirflowApi(cfg).ensure_pool(cfg.airflow.pool, cfg.airflow.pool_slots)
    _start(cfg, "scheduler", ["scheduler", "--skip-serve-logs"], env)
    _wait(
        cfg,
        "the scheduler did not report healthy",
        lambda: (_health(cfg) or {}).get("scheduler", {}).get("status") == "healthy",
        cfg.airflow.start_timeout_s,
        "scheduler",
    )
    state_file.write_text(json.dumps({"fingerprint": fp, "env": cfg.env, "set": set_pairs}))
    log.info("airflow up at %s in %.0f s", base_url(cfg), time.monotonic() - t0)
    return status(cfg)


def _reap(pid: int) -> None:
    """Collect the exit status of `pid` if this process started it (`up` in the same Python
    process: the tests, the demo), so that a stopped server does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is alive (zombies, which are dead, do not count)."""
    _reap(pgid)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


def home_processes(cfg: AppConfig) -> list[int]:
    """Processes started by this Airflow instance (the scheduler's task processes, the
    spark-submits and JVMs they start: each inherits INSTANCE_ENV), found in /proc."""
    marker = f"{INSTANCE_ENV}={home(cfg)}".encode() + b"\0"
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if marker in (d / "environ").read_bytes():
                found.append(int(d.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _kill_all(pids: list[int], grace: float) -> list[int]:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def down(cfg: AppConfig) -> dict[str, Any]:
    """SIGTERM each process group (scheduler first), SIGKILL what is left after the grace; then
    any process still carrying this home's AIRFLOW_HOME (a task process in a group of its own,
    a spark-submit, its JVM) gets the same."""
    stopped = {}
    for name in reversed(PROCESSES):
        f = _pid_file(cfg, name)
        try:
            pid = int(f.read_text().strip())
        except (OSError, ValueError):
            continue
        if _group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            if _group_alive(pid):
                log.warning("airflow %s did not stop in %.0f s: SIGKILL", name, STOP_GRACE_S)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                time.sleep(0.5)
                _reap(pid)
            stopped[name] = pid
        f.unlink(missing_ok=True)
    leftover = home_processes(cfg)
    killed = _kill_all(leftover, 10.0) if leftover else []
    if leftover:
        log.info("stopped %d leftover process(es) of %s: %s", len(leftover), home(cfg), leftover)
    (home(cfg) / "state.json").unlink(missing_ok=True)
    return {"stopped": stopped, "leftover_stopped": leftover, "killed": killed}
