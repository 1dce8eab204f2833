"""A real single-node KRaft Kafka broker from the Apache Kafka jars (`lakeloop setup`).

`lakeloop kafka up|down|status` (and infra/kafka.sh): the broker listens on 127.0.0.1 with its
data under the configured data dir. `up` waits until the broker answers and is harmless when it
already runs; `down` stops it with SIGTERM (a clean shutdown) and waits for the process to end.
Topics are not auto-created (`auto.create.topics.enable=false`): `lakeloop kafka create-topics
--pipeline P` creates a spec's topics. A broker started before that setting keeps its old
properties until it is restarted (`down` then `up` rewrites server.properties).
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from lakeloop.config import AppConfig
from lakeloop.jars import RESOURCES, kafka_jars_dir
from lakeloop.procs import live_pid, port_open, stop

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerPaths:
    data_dir: Path
    jars_dir: Path

    @property
    def properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def kraft_dir(self) -> Path:
        return self.data_dir / "kraft-data"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def stdout(self) -> Path:
        return self.log_dir / "stdout.log"


def _paths(cfg: AppConfig) -> BrokerPaths:
    b = cfg.kafka.broker
    return BrokerPaths(cfg.path(b.data_dir).resolve(), kafka_jars_dir(cfg).resolve())


def _server_properties(cfg: AppConfig, paths: BrokerPaths) -> str:
    b = cfg.kafka.broker
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{b.host}:{b.controller_port}",
            f"listeners=PLAINTEXT://{b.host}:{b.port},CONTROLLER://{b.host}:{b.controller_port}",
            f"advertised.listeners=PLAINTEXT://{b.host}:{b.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={paths.kraft_dir}",
            f"num.partitions={b.num_partitions}",
            "offsets.topic.replication.factor=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # topics come from the specs (`lakeloop kafka create-topics`), never from a typo'd
            # name in a producer or consumer
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            "",
        ]
    )


def _java_cmd(paths: BrokerPaths, cfg: AppConfig, *args: str, heap: str | None = None) -> list[str]:
    jars = paths.jars_dir
    if not jars.is_dir() or not any(jars.glob("kafka_2.13-*.jar")):
        raise BrokerError(
            f"Kafka broker jars missing in {jars}; run `lakeloop setup` "
            "(`make kafka-jars` in a lakeloop checkout)"
        )
    log4j = RESOURCES / "kafka" / "log4j2.properties"  # shipped in the package
    cmd = ["java"]
    if heap:
        cmd += [f"-Xmx{heap}", f"-Xms{heap}"]
    cmd += [
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={paths.log_dir}",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
        f"{jars}/*",
        *args,
    ]
    return cmd


def _pid(paths: BrokerPaths) -> int | None:
    return live_pid(paths.pid_file, b"kafka.Kafka")


def answers(cfg: AppConfig, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request (not just an open port)."""
    b = cfg.kafka.broker
    if not port_open(b.host, b.port):
        return False
    from kafka.errors import KafkaError

    from lakeloop.kafka_io import admin_client

    try:
        admin = admin_client({"bootstrap_servers": f"{b.host}:{b.port}"}, timeout_s)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True
    except (KafkaError, OSError, ValueError):
        return False


def status(cfg: AppConfig) -> dict[str, object]:
    paths = _paths(cfg)
    b = cfg.kafka.broker
    pid = _pid(paths)
    return {
        "running": pid is not None,
        "pid": pid,
        "answers": answers(cfg) if pid else False,
        "bootstrap": f"{b.host}:{b.port}",
        "data_dir": str(paths.data_dir),
        "log": str(paths.log_dir / "server.log"),
    }


def _format_storage(cfg: AppConfig, paths: BrokerPaths) -> None:
    if (paths.kraft_dir / "meta.properties").exists():
        return
    cluster_id = uuid.uuid4().bytes
    import base64

    cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
    cmd = _java_cmd(
        paths,
        cfg,
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cid}",
        "--config",
        str(paths.properties),
    )
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BrokerError(f"formatting Kafka storage failed: {res.stderr or res.stdout}")
    log.info("formatted KRaft storage in %s (cluster id %s)", paths.kraft_dir, cid)


def up(cfg: AppConfig) -> dict[str, object]:
    """Start the broker unless it already runs; wait until it answers."""
    paths = _paths(cfg)
    b = cfg.kafka.broker
    if _pid(paths) is not None:
        if not _wait_answers(cfg, b.start_timeout_s):
            raise BrokerError(
                f"broker pid {_pid(paths)} runs but does not answer; see {paths.log_dir}/server.log"
            )
        log.info("Kafka broker already running (pid %s)", _pid(paths))
        return status(cfg)
    if port_open(b.host, b.port):
        raise BrokerError(
            f"port {b.host}:{b.port} is taken by another process (not this project's broker); "
            "stop it or set kafka.broker.port"
        )
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(_server_properties(cfg, paths))
    _format_storage(cfg, paths)
    cmd = _java_cmd(paths, cfg, "kafka.Kafka", str(paths.properties), heap=b.heap)
    with open(paths.stdout, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    paths.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + b.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            paths.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                f"Kafka broker exited with {proc.returncode}; see {paths.stdout} "
                f"and {paths.log_dir}/server.log"
            )
        if answers(cfg, timeout_s=2):
            log.info("Kafka broker up on %s:%s (pid %s)", b.host, b.port, proc.pid)
            return status(cfg)
        time.sleep(0.5)
    down(cfg)
    raise BrokerError(
        f"Kafka broker did not answer within {b.start_timeout_s}s; see {paths.log_dir}/server.log"
    )


def _wait_answers(cfg: AppConfig, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(cfg, timeout_s=2):
            return True
        time.sleep(0.5)
    return False


def down(cfg: AppConfig, timeout_s: float = 30.0) -> dict[str, object]:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after timeout_s); harmless if stopped."""
    paths = _paths(cfg)
    stop(_pid(paths), paths.pid_file, "Kafka broker", timeout_s)
    return status(cfg)
