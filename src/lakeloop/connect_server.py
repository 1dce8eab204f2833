"""A local Spark Connect server with the project's jars and session settings: one long-lived
Spark driver that jobs reach as clients (`spark.remote: sc://127.0.0.1:15002`) instead of each
starting a JVM of its own.

    python -m lakeloop.connect_server up|down|status [--env E] [--set KEY=VALUE ...]

`up` starts `org.apache.spark.sql.connect.service.SparkConnectServer` through the virtualenv's
spark-submit (master `spark.master`, `--jars` the Delta and Kafka jars, every setting of
`lakeloop.session.session_conf`, bound to the host and port of `spark.remote`, else
127.0.0.1:15002) and waits until it listens. Its pid file and log are in the project's
`.connect/` folder, one pair per port (`server-<port>.pid`, `server-<port>.log`); `down`
stops it by that pid (SIGTERM, then SIGKILL). The server's Python workers (UDFs, foreachBatch)
run this interpreter, so they import lakeloop like a job does.

The driver is long-lived, so it gets the JVM's default JIT rather than the short-job options of
`spark.driver_java_options`. Delta's Connect plugin (`delta-connect-server`) is not published
for Spark 4.1 / Delta 4.4: DataFrame reads and writes of Delta work, the DeltaTable API does not
(see bench/connect.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lakeloop.config import AppConfig, add_config_arguments, load_config, parse_set_pairs
from lakeloop.jars import spark_jars, spark_jars_dir
from lakeloop.procs import live_pid, port_open, stop
from lakeloop.session import session_conf

log = logging.getLogger(__name__)

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_URL = "sc://127.0.0.1:15002"
DEFAULT_PORT = 15002  # Spark Connect's own default
HOME = Path(".connect")  # project-relative: pid files and logs
START_TIMEOUT_S = 120.0
_URL = re.compile(r"sc://(?P<host>[^/:;\s]+)(:(?P<port>\d{1,5}))?(/.*)?")


class ConnectServerError(RuntimeError):
    """The Spark Connect server cannot be started, stopped or reached."""


@dataclass(frozen=True)
class ServerPaths:
    home: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.home / f"server-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"server-{self.port}.log"


def address(url: str) -> tuple[str, int]:
    """`sc://host[:port][/;params]` -> (host, port); port 15002 when not given."""
    m = _URL.fullmatch(url)
    if m is None:
        raise ConnectServerError(f"{url!r} is not a Spark Connect URL sc://host[:port]")
    return m["host"], int(m["port"] or DEFAULT_PORT)


def server_url(cfg: AppConfig) -> str:
    """The server this config's jobs reach: `spark.remote`, else the local default."""
    return cfg.spark.remote or DEFAULT_URL


def start_hint(cfg: AppConfig) -> str:
    return (
        f"start it with `python -m lakeloop.connect_server up --env {cfg.env}` (its log: "
        f"{_paths(cfg).log_file})"
    )


def _paths(cfg: AppConfig) -> ServerPaths:
    return ServerPaths(cfg.path(HOME).resolve(), address(server_url(cfg))[1])


def _spark_submit() -> str:
    """The virtualenv's spark-submit (pyspark's, beside this interpreter), else PATH's."""
    here = Path(sys.executable).parent / "spark-submit"
    found = str(here) if here.is_file() else shutil.which("spark-submit")
    if found is None:
        raise ConnectServerError(
            "spark-submit not found beside the interpreter nor on PATH (install pyspark)"
        )
    return found


def server_command(cfg: AppConfig) -> list[str]:
    """The spark-submit command of the server: lakeloop's session settings, the jars, the
    Connect binding. MissingJarsError when the jars folder lacks Delta or Kafka."""
    host, port = address(server_url(cfg))
    jars = ",".join(str(j) for j in spark_jars(spark_jars_dir(cfg)))
    conf = session_conf(cfg, launches_jvm=False)
    conf["spark.app.name"] = f"{cfg.spark.app_name}-connect"
    conf["spark.connect.grpc.binding.address"] = host
    conf["spark.connect.grpc.binding.port"] = str(port)
    cmd = [_spark_submit(), "--master", cfg.spark.master, "--class", SERVER_CLASS, "--jars", jars]
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    return [*cmd, "spark-internal"]


def _env(cfg: AppConfig) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,  # the server's Python workers import lakeloop
        "PYARROW_IGNORE_TIMEZONE": "1",
    }
    for var in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE"):
        env.pop(var, None)
    if cfg.spark.local_ip:
        env["SPARK_LOCAL_IP"] = cfg.spark.local_ip
    return env


def _pid(paths: ServerPaths) -> int | None:
    return live_pid(paths.pid_file, SERVER_CLASS.encode())


def status(cfg: AppConfig) -> dict[str, object]:
    paths = _paths(cfg)
    host, port = address(server_url(cfg))
    pid = _pid(paths)
    return {
        "running": pid is not None,
        "pid": pid,
        "answers": port_open(host, port) if pid else False,
        "url": server_url(cfg),
        "log": str(paths.log_file),
    }


def up(cfg: AppConfig, timeout_s: float = START_TIMEOUT_S) -> dict[str, object]:
    """Start the server unless it already runs; wait until it listens."""
    paths = _paths(cfg)
    host, port = address(server_url(cfg))
    pid = _pid(paths)
    if pid is not None:
        if not _wait_listening(host, port, None, timeout_s):
            raise ConnectServerError(
                f"Spark Connect server pid {pid} runs but does not listen on {host}:{port}; "
                f"see {paths.log_file}"
            )
        log.info("Spark Connect server already running (pid %s)", pid)
        return status(cfg)
    if port_open(host, port):
        raise ConnectServerError(
            f"port {host}:{port} is taken by another process (not this project's Connect "
            "server): stop it or choose another port in spark.remote"
        )
    cmd = server_command(cfg)
    paths.home.mkdir(parents=True, exist_ok=True)
    with open(paths.log_file, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(cfg),
            cwd=cfg.project_root,
            start_new_session=True,
        )
    paths.pid_file.write_text(str(proc.pid))  # spark-class execs the JVM: this pid is the JVM
    t = time.monotonic()
    if not _wait_listening(host, port, proc, timeout_s):
        code = proc.poll()
        if code is None:
            down(cfg)
        paths.pid_file.unlink(missing_ok=True)
        what = f"exited with {code}" if code is not None else f"did not listen in {timeout_s}s"
        raise ConnectServerError(f"Spark Connect server {what}; see {paths.log_file}")
    log.info(
        "Spark Connect server up on %s (pid %s) in %.1fs",
        server_url(cfg),
        proc.pid,
        time.monotonic() - t,
    )
    return status(cfg)


def _wait_listening(host: str, port: int, proc: subprocess.Popen | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(host, port):
            return True
        time.sleep(0.3)
    return False


def down(cfg: AppConfig, timeout_s: float = 30.0) -> dict[str, object]:
    """Stop the server (SIGTERM, then SIGKILL after timeout_s); harmless if stopped."""
    paths = _paths(cfg)
    stop(_pid(paths), paths.pid_file, "Spark Connect server", timeout_s)
    return status(cfg)


def main(argv: list[str] | None = None) -> int:
    from lakeloop import logs

    logs.configure()
    p = argparse.ArgumentParser(prog="python -m lakeloop.connect_server")
    p.add_argument("cmd", choices=["up", "down", "status"])
    add_config_arguments(p)
    args = p.parse_args(argv)
    cfg = load_config(args.env, parse_set_pairs(args.set))
    try:
        state = {"up": up, "down": down, "status": status}[args.cmd](cfg)
    except ConnectServerError as e:
        log.error("%s", e)
        return 1
    sys.stdout.write(json.dumps(state) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
