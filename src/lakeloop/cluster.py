"""A real multi-process cluster on this machine: `lakeloop cluster up|down|status`
(infra/cluster.sh, `make cluster-up`).

Five kinds of daemon, all on `cluster.host`, each in a process group of its own with a pid file
and a log under `cluster.home` (`.cluster/`, project-relative)::

    hdfs     NameNode (rpc cluster.hdfs_port, http +50) + DataNode (+46, http +44, ipc +47),
             from the Hadoop jars `lakeloop setup` resolves (the Hadoop version pyspark ships);
             formatted once, /spark-events (mode 777) created for Spark's event logs
    spark    a standalone Master (cluster.spark_port, web UI + /json on cluster.spark_ui_port)
             and cluster.workers Workers (web UI on spark_ui_port + 1..n), from the pip
             install's `spark-class`
    mlflow   `mlflow server`: a SQLite store in home, artifacts proxied into home

The HDFS ports derive from `cluster.hdfs_port` the way Hadoop's defaults do (9820 -> 9870, 9866,
9864, 9867), so a second cluster with other ports (conf/test: 29820...) never clashes.

`up` starts what does not run yet and waits until every part answers (NameNode JMX: a live
DataNode and not in safe mode; the master's /json: `cluster.workers` ALIVE workers; MLflow
/health), so a second `up` does nothing. A daemon that dies or does not get ready in
`cluster.start_timeout_s` is an error with the tail of its log, and what this `up` started is
stopped again. `down` sends SIGTERM to each daemon's process group (executors and MLflow's web
workers are in it), SIGKILL after a grace period; a pid file whose process is gone, or is not
this cluster's (the command line carries a marker naming the cluster home), is only removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from lakeloop.config import AppConfig
from lakeloop.jars import hdfs_jars, hdfs_jars_dir
from lakeloop.procs import alive, live_pid, port_open

log = logging.getLogger(__name__)

DAEMON_HEAP = "512m"  # NameNode, DataNode, Spark Master and Worker daemons (not executors)
SPARK_EVENTS = "/spark-events"
STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 25
# Java 17 closes what Hadoop 3.4's JAXB (WebHDFS's JSON) reflects into; Hadoop's own scripts
# open these too.
JAVA17_OPENS = tuple(
    f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
    for pkg in ("java.lang", "java.util", "java.util.concurrent", "java.net", "java.nio")
)
# Hadoop's default ports are these offsets from the NameNode's rpc port 9820.
HDFS_PORT_OFFSETS = {"namenode_http": 50, "datanode": 46, "datanode_http": 44, "datanode_ipc": 47}


class ClusterError(RuntimeError):
    """A cluster daemon could not be started, got no ready, or a port is taken."""


@dataclass(frozen=True)
class Endpoints:
    hdfs_uri: str
    spark_master: str
    spark_ui: str
    mlflow_uri: str


def endpoints(cfg: AppConfig) -> Endpoints:
    c = cfg.cluster
    return Endpoints(
        hdfs_uri=f"hdfs://{c.host}:{c.hdfs_port}",
        spark_master=f"spark://{c.host}:{c.spark_port}",
        spark_ui=f"http://{c.host}:{c.spark_ui_port}",
        mlflow_uri=f"http://{c.host}:{c.mlflow_port}",
    )


def hdfs_ports(cfg: AppConfig) -> dict[str, int]:
    """The NameNode rpc port and the ports derived from it."""
    rpc = cfg.cluster.hdfs_port
    ports = {"namenode": rpc, **{k: rpc + off for k, off in HDFS_PORT_OFFSETS.items()}}
    if max(ports.values()) > 65535:
        raise ClusterError(
            f"cluster.hdfs_port {rpc} is too high: the HDFS ports derived from it reach "
            f"{max(ports.values())} (> 65535); use a port below {65535 - max(HDFS_PORT_OFFSETS.values())}"
        )
    return ports


def worker_ui_port(cfg: AppConfig, i: int) -> int:
    """Worker i's (1-based) web UI port: right after the master's."""
    return cfg.cluster.spark_ui_port + i


def all_ports(cfg: AppConfig) -> dict[str, int]:
    """Every fixed port the cluster listens on, by owner; two owners of one port is an error."""
    c = cfg.cluster
    ports = {f"hdfs {k}": p for k, p in hdfs_ports(cfg).items()}
    ports["spark master"] = c.spark_port
    ports["spark master ui"] = c.spark_ui_port
    ports.update({f"spark worker-{i} ui": worker_ui_port(cfg, i) for i in range(1, c.workers + 1)})
    ports["mlflow"] = c.mlflow_port
    seen: dict[int, str] = {}
    for owner, port in ports.items():
        if port in seen:
            raise ClusterError(
                f"cluster ports clash: {seen[port]} and {owner} both on {port} (HDFS uses "
                f"cluster.hdfs_port + {sorted(HDFS_PORT_OFFSETS.values())}, the workers' UIs "
                "cluster.spark_ui_port + 1..workers); change one of the cluster.*_port settings"
            )
        seen[port] = owner
    return ports


# --- layout and generated files ---------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    home: Path

    @property
    def hdfs_conf(self) -> Path:
        return self.home / "hdfs" / "conf"

    @property
    def name_dir(self) -> Path:
        return self.home / "hdfs" / "name"

    @property
    def data_dir(self) -> Path:
        return self.home / "hdfs" / "data"

    @property
    def spark_conf(self) -> Path:
        return self.home / "spark" / "conf"

    def worker_dir(self, i: int) -> Path:
        return self.home / "spark" / f"worker-{i}"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    def pid_file(self, name: str) -> Path:
        return self.home / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def marker(self, name: str) -> str:
        """What a daemon's command line carries so that only this cluster's is ever stopped."""
        return f"-Dlakeloop.daemon={self.home}#{name}"


def layout(cfg: AppConfig) -> Layout:
    return Layout(cfg.path(cfg.cluster.home).resolve())


def hadoop_xml(props: dict[str, str]) -> str:
    """A Hadoop `*-site.xml` with the given properties."""
    rows = "".join(
        f"  <property>\n    <name>{escape(k)}</name>\n    <value>{escape(v)}</value>\n"
        "  </property>\n"
        for k, v in props.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- written by `lakeloop cluster up` (lakeloop.cluster); rewritten on every up -->\n"
        f"<configuration>\n{rows}</configuration>\n"
    )


def core_site(cfg: AppConfig, lay: Layout) -> dict[str, str]:
    return {
        "fs.defaultFS": endpoints(cfg).hdfs_uri,
        "hadoop.tmp.dir": str(lay.home / "hdfs" / "tmp"),
    }


def hdfs_site(cfg: AppConfig, lay: Layout) -> dict[str, str]:
    h = cfg.cluster.host
    p = hdfs_ports(cfg)
    return {
        "dfs.replication": "1",
        "dfs.namenode.name.dir": lay.name_dir.as_uri(),
        "dfs.datanode.data.dir": lay.data_dir.as_uri(),
        "dfs.namenode.rpc-address": f"{h}:{p['namenode']}",
        "dfs.namenode.rpc-bind-host": h,
        "dfs.namenode.http-address": f"{h}:{p['namenode_http']}",
        "dfs.namenode.http-bind-host": h,
        "dfs.datanode.address": f"{h}:{p['datanode']}",
        "dfs.datanode.http.address": f"{h}:{p['datanode_http']}",
        "dfs.datanode.ipc.address": f"{h}:{p['datanode_ipc']}",
        "dfs.datanode.hostname": h,
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # one machine, one user: no HDFS permission checks (Spark, MLflow and the tests write)
        "dfs.permissions.enabled": "false",
        # leave safe mode as soon as the blocks are reported (a restart, not 30 s later)
        "dfs.namenode.safemode.extension": "0",
    }


def log4j_properties() -> str:
    """Hadoop logs through reload4j (log4j 1.x): everything to stderr, i.e. the daemon's log."""
    return "\n".join(
        [
            "# written by `lakeloop cluster up` (lakeloop.cluster)",
            "log4j.rootLogger=INFO,console",
            "log4j.appender.console=org.apache.log4j.ConsoleAppender",
            "log4j.appender.console.target=System.err",
            "log4j.appender.console.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n",
            "log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR",
            "log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN",
            "log4j.logger.BlockStateChange=WARN",
            "",
        ]
    )


def write_hdfs_conf(cfg: AppConfig, lay: Layout) -> None:
    conf = lay.hdfs_conf
    # The Maven jars carry no webapps/ resources; the NameNode and DataNode HTTP servers stop
    # with "webapps/hdfs not found in CLASSPATH" unless these folders are on the classpath.
    for app in ("hdfs", "datanode", "secondary"):
        (conf / "webapps" / app).mkdir(parents=True, exist_ok=True)
    (conf / "core-site.xml").write_text(hadoop_xml(core_site(cfg, lay)))
    (conf / "hdfs-site.xml").write_text(hadoop_xml(hdfs_site(cfg, lay)))
    (conf / "log4j.properties").write_text(log4j_properties())


# --- readiness --------------------------------------------------------------------------------


def parse_namenode_jmx(payload: dict) -> tuple[int, str]:
    """(live DataNodes, FSState) from the NameNode's `FSNamesystemState` JMX bean."""
    for bean in payload.get("beans", []):
        if "NumLiveDataNodes" in bean:
            return int(bean["NumLiveDataNodes"]), str(bean.get("FSState", ""))
    return 0, ""


def hdfs_ready_from_jmx(payload: dict) -> bool:
    live, state = parse_namenode_jmx(payload)
    return live >= 1 and state == "Operational"  # "safeMode" until the blocks are reported


def alive_workers(payload: dict) -> int:
    """ALIVE workers in the standalone master's /json (a restarted worker's old entry is DEAD)."""
    if payload.get("status") != "ALIVE":
        return 0
    return sum(1 for w in payload.get("workers", []) if w.get("state") == "ALIVE")


def _get(url: str, timeout_s: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _get_json(url: str) -> dict | None:
    body = _get(url)
    if body is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def namenode_http(cfg: AppConfig) -> str:
    return f"http://{cfg.cluster.host}:{hdfs_ports(cfg)['namenode_http']}"


def hdfs_ready(cfg: AppConfig) -> bool:
    jmx = _get_json(f"{namenode_http(cfg)}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState")
    return jmx is not None and hdfs_ready_from_jmx(jmx)


def spark_ready(cfg: AppConfig) -> bool:
    master = _get_json(f"{endpoints(cfg).spark_ui}/json")
    return master is not None and alive_workers(master) >= cfg.cluster.workers


def mlflow_ready(cfg: AppConfig) -> bool:
    body = _get(f"{endpoints(cfg).mlflow_uri}/health")
    return body is not None and body.strip() == b"OK"


# --- daemons ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Daemon:
    name: str
    part: str  # hdfs | spark | mlflow
    cmd: tuple[str, ...]
    marker: str  # in the command line of this cluster's process, of no one else's
    url: str
    ports: tuple[tuple[str, int], ...] = ()  # (owner, port) it binds; checked free before start
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def _java(required: bool = False) -> str:
    """$JAVA_HOME/bin/java, else java on PATH; `required`: an error when there is none (status
    and down work without a JVM)."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        if required:
            raise ClusterError("java not found: set JAVA_HOME or put Java 17 on PATH")
        return "java"
    return java


def _hadoop_cmd(cfg: AppConfig, lay: Layout, name: str, main: str, *args: str) -> tuple[str, ...]:
    jars = hdfs_jars_dir(cfg).resolve()
    return (
        _java(),
        f"-Xmx{DAEMON_HEAP}",
        lay.marker(name),
        "-Djava.net.preferIPv4Stack=true",
        *JAVA17_OPENS,
        f"-Dhadoop.log.dir={lay.home / 'logs'}",
        "-cp",
        f"{lay.hdfs_conf}:{jars}/*",
        main,
        *args,
    )


def _spark_class() -> tuple[Path, Path]:
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    return home, home / "bin" / "spark-class"


def _spark_env(cfg: AppConfig, lay: Layout, name: str) -> dict[str, str]:
    spark_home, _ = _spark_class()
    return {
        "SPARK_HOME": str(spark_home),
        # a conf dir of its own: not the venv's spark-defaults.conf / spark-env.sh (the driver's)
        "SPARK_CONF_DIR": str(lay.spark_conf),
        "SPARK_LOCAL_IP": cfg.cluster.host,
        "SPARK_DAEMON_MEMORY": DAEMON_HEAP,
        "SPARK_DAEMON_JAVA_OPTS": lay.marker(name),
        "SPARK_LOG_DIR": str(lay.home / "logs"),
    }


def daemons(cfg: AppConfig, lay: Layout | None = None) -> list[Daemon]:
    """Every daemon of the cluster, in start order."""
    lay = lay or layout(cfg)
    c = cfg.cluster
    ep = endpoints(cfg)
    hp = hdfs_ports(cfg)
    out = [
        Daemon(
            "namenode",
            "hdfs",
            _hadoop_cmd(cfg, lay, "namenode", "org.apache.hadoop.hdfs.server.namenode.NameNode"),
            lay.marker("namenode"),
            namenode_http(cfg),
            (("hdfs namenode", hp["namenode"]), ("hdfs namenode http", hp["namenode_http"])),
        ),
        Daemon(
            "datanode",
            "hdfs",
            _hadoop_cmd(cfg, lay, "datanode", "org.apache.hadoop.hdfs.server.datanode.DataNode"),
            lay.marker("datanode"),
            f"http://{c.host}:{hp['datanode_http']}",
            tuple((f"hdfs {k}", hp[k]) for k in ("datanode", "datanode_http", "datanode_ipc")),
        ),
    ]
    _, spark_class = _spark_class()
    out.append(
        Daemon(
            "spark-master",
            "spark",
            (
                str(spark_class),
                "org.apache.spark.deploy.master.Master",
                "--host",
                c.host,
                "--port",
                str(c.spark_port),
                "--webui-port",
                str(c.spark_ui_port),
            ),
            lay.marker("spark-master"),
            ep.spark_ui,
            (("spark master", c.spark_port), ("spark master ui", c.spark_ui_port)),
            _spark_env(cfg, lay, "spark-master"),
        )
    )
    for i in range(1, c.workers + 1):
        name = f"spark-worker-{i}"
        out.append(
            Daemon(
                name,
                "spark",
                (
                    str(spark_class),
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    c.host,
                    "--cores",
                    str(c.worker_cores),
                    "--memory",
                    c.worker_memory,
                    "--work-dir",
                    str(lay.worker_dir(i)),
                    "--webui-port",
                    str(worker_ui_port(cfg, i)),
                    ep.spark_master,
                ),
                lay.marker(name),
                f"http://{c.host}:{worker_ui_port(cfg, i)}",
                ((f"spark {name} ui", worker_ui_port(cfg, i)),),
                _spark_env(cfg, lay, name),
            )
        )
    db = lay.mlflow_dir / "mlflow.db"
    out.append(
        Daemon(
            "mlflow",
            "mlflow",
            (
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--serve-artifacts",
                "--artifacts-destination",
                str(lay.mlflow_dir / "artifacts"),
                "--host",
                c.host,
                "--port",
                str(c.mlflow_port),
                "--workers",
                "1",
            ),
            f"sqlite:///{db}",  # the store path names this cluster's home
            ep.mlflow_uri,
            (("mlflow", c.mlflow_port),),
            # MLflow 3's job runner (GenAI scorers, trace archival) starts seven huey consumer
            # processes (~1.2 GB, most of the start time); lakeloop uses none of it
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=lay.mlflow_dir,
        )
    )
    return out


PARTS: dict[str, Callable[[AppConfig], bool]] = {
    "hdfs": hdfs_ready,
    "spark": spark_ready,
    "mlflow": mlflow_ready,
}


def _pid(lay: Layout, d: Daemon) -> int | None:
    return live_pid(lay.pid_file(d.name), d.marker.encode())


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _start(lay: Layout, d: Daemon, host: str) -> subprocess.Popen:
    for owner, port in d.ports:
        if port_open(host, port):
            raise ClusterError(
                f"port {port} ({owner}) is taken by another process, not this cluster's "
                f"{d.name}; stop it or change the cluster.*_port settings"
            )
    logf = lay.log_file(d.name)
    logf.parent.mkdir(parents=True, exist_ok=True)
    lay.pid_file(d.name).parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} lakeloop cluster up ===\n".encode())
        out.flush()
        proc = subprocess.Popen(
            d.cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **d.env},
            cwd=d.cwd,
            start_new_session=True,  # its own process group: `down` stops its children too
        )
    lay.pid_file(d.name).write_text(str(proc.pid))
    log.info("started %s (pid %s), log %s", d.name, proc.pid, logf)
    return proc


def wait_ready(
    lay: Layout,
    started: Sequence[tuple[Daemon, subprocess.Popen]],
    ready: Callable[[], bool],
    what: str,
    timeout_s: float,
) -> float:
    """Poll `ready` until true; a started daemon that exits, or the timeout, is a ClusterError
    with its log's tail. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - t0
        for d, proc in started:
            if proc.poll() is not None:
                raise ClusterError(
                    f"{d.name} exited with {proc.returncode} while {what} was starting; "
                    f"{lay.log_file(d.name)} ends with:\n{log_tail(lay.log_file(d.name))}"
                )
        if time.monotonic() - t0 > timeout_s:
            tails = "\n".join(
                f"--- {lay.log_file(d.name)}:\n{log_tail(lay.log_file(d.name), 10)}"
                for d, _ in started
            )
            raise ClusterError(
                f"{what} not ready within {timeout_s:.0f}s (cluster.start_timeout_s)\n{tails}"
            )
        time.sleep(0.5)


def _format_namenode(cfg: AppConfig, lay: Layout) -> bool:
    """Format the NameNode's storage once; False when it already is."""
    if (lay.name_dir / "current" / "VERSION").exists():
        return False
    # a DataNode folder from an earlier format carries that cluster's id and would be refused
    shutil.rmtree(lay.data_dir, ignore_errors=True)
    cmd = _hadoop_cmd(
        cfg,
        lay,
        "namenode-format",
        "org.apache.hadoop.hdfs.server.namenode.NameNode",
        "-format",
        "-nonInteractive",
    )
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise ClusterError(f"formatting the NameNode in {lay.name_dir} failed:\n{tail}")
    log.info("formatted the NameNode storage in %s", lay.name_dir)
    return True


def _ensure_spark_events(cfg: AppConfig, lay: Layout) -> None:
    """/spark-events on HDFS, mode 777, for the cluster profile's spark.eventLog.dir."""
    status = _get_json(f"{namenode_http(cfg)}/webhdfs/v1{SPARK_EVENTS}?op=GETFILESTATUS")
    fs = (status or {}).get("FileStatus", {})
    if fs.get("type") == "DIRECTORY" and fs.get("permission") == "777":
        return
    cmd = _hadoop_cmd(
        cfg,
        lay,
        "fsshell",
        "org.apache.hadoop.fs.FsShell",
        "-D",
        "fs.permissions.umask-mode=000",  # mkdir makes it 777
        "-fs",
        endpoints(cfg).hdfs_uri,
        "-mkdir",
        "-p",
        SPARK_EVENTS,
    )
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ClusterError(
            f"creating {SPARK_EVENTS} on HDFS failed: {(res.stderr or res.stdout)[-1500:]}"
        )
    if fs.get("type") == "DIRECTORY":  # it was there with another mode
        chmod = [*cmd[: cmd.index("-mkdir")], "-chmod", "777", SPARK_EVENTS]
        subprocess.run(chmod, capture_output=True, text=True, check=False)
    log.info("created %s on %s", SPARK_EVENTS, endpoints(cfg).hdfs_uri)


def _prepare(cfg: AppConfig, lay: Layout) -> None:
    hdfs_jars(hdfs_jars_dir(cfg))  # MissingJarsError naming `lakeloop setup`
    _java(required=True)
    all_ports(cfg)
    for d in (lay.home / "run", lay.home / "logs", lay.spark_conf, lay.mlflow_dir / "artifacts"):
        d.mkdir(parents=True, exist_ok=True)
    for i in range(1, cfg.cluster.workers + 1):
        lay.worker_dir(i).mkdir(parents=True, exist_ok=True)
    write_hdfs_conf(cfg, lay)


def up(cfg: AppConfig) -> dict[str, object]:
    """Start every part that does not run yet and wait until all answer; harmless when up."""
    lay = layout(cfg)
    _prepare(cfg, lay)
    timings: dict[str, float] = {}
    started: list[tuple[Daemon, subprocess.Popen]] = []
    t0 = time.monotonic()
    try:
        # every part's missing daemons start at once (they do not depend on each other: a
        # worker retries the master, MLflow needs neither), then each part is waited for
        waits = []
        for part, ready in PARTS.items():
            todo = [d for d in daemons(cfg, lay) if d.part == part and _pid(lay, d) is None]
            if not todo and ready(cfg):
                log.info("%s already running and ready", part)
                continue
            if part == "hdfs" and any(d.name == "namenode" for d in todo):
                if _format_namenode(cfg, lay):
                    timings["hdfs format"] = round(time.monotonic() - t0, 1)
            mine = [(d, _start(lay, d, cfg.cluster.host)) for d in todo]
            started += mine
            waits.append((part, ready, mine))
        for part, ready, mine in waits:
            left = max(1.0, cfg.cluster.start_timeout_s - (time.monotonic() - t0))
            wait_ready(lay, mine, lambda r=ready: r(cfg), part, left)
            if part == "hdfs":
                _ensure_spark_events(cfg, lay)
            timings[part] = round(time.monotonic() - t0, 1)
            log.info("%s ready %.1fs after up began", part, timings[part])
    except BaseException:
        if started:
            log.warning("stopping what this up started: %s", ", ".join(d.name for d, _ in started))
            _stop(lay, [d for d, _ in started])
        raise
    result = status(cfg)
    result["started"] = [d.name for d, _ in started]
    result["seconds"] = timings
    return result


def _stop(lay: Layout, ds: Sequence[Daemon], grace_s: float = STOP_GRACE_S) -> list[str]:
    """SIGTERM to each running daemon's process group, SIGKILL after grace_s; pid files go."""
    running: dict[str, int] = {}
    for d in ds:
        pid = _pid(lay, d)
        if pid is None:
            lay.pid_file(d.name).unlink(missing_ok=True)
            continue
        running[d.name] = pid
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in running.values()):
        time.sleep(0.2)
    for name, pid in running.items():
        if alive(pid):
            log.warning("%s (pid %s) ignored SIGTERM for %.0fs; killing it", name, pid, grace_s)
            _signal(pid, signal.SIGKILL)
        lay.pid_file(name).unlink(missing_ok=True)
        log.info("stopped %s (pid %s)", name, pid)
    return list(running)


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # its own group (start_new_session): children too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def down(cfg: AppConfig, grace_s: float = STOP_GRACE_S) -> dict[str, object]:
    """Stop every daemon of this cluster (workers before the master, DataNode before the
    NameNode: reverse start order); harmless when nothing runs."""
    lay = layout(cfg)
    ds = list(reversed(daemons(cfg, lay)))
    t0 = time.monotonic()
    stopped = _stop(lay, ds, grace_s) if lay.home.exists() else []
    result = status(cfg)
    result["stopped"] = stopped
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def status(cfg: AppConfig) -> dict[str, object]:
    """Each daemon (pid, URL, log) and whether each part answers."""
    lay = layout(cfg)
    ds = daemons(cfg, lay)
    parts = []
    for d in ds:
        pid = _pid(lay, d)
        parts.append(
            {
                "name": d.name,
                "running": pid is not None,
                "pid": pid,
                "url": d.url,
                "log": str(lay.log_file(d.name)),
            }
        )
    running = {p["name"] for p in parts if p["running"]}
    ready = {
        part: bool({d.name for d in ds if d.part == part} & running) and check(cfg)
        for part, check in PARTS.items()
    }
    return {
        "home": str(lay.home),
        "ready": ready,
        "endpoints": asdict(endpoints(cfg)),
        "daemons": parts,
    }
