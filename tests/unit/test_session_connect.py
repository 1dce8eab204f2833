"""spark.remote: the Spark Connect switch of lakeloop.session and the local server's command and
guards (lakeloop.connect_server). No JVM and no Connect session here: building a Connect client
puts the whole process in Connect mode (PySpark sets SPARK_CONNECT_MODE_ENABLED), which the
tests' classic `spark` fixture must never see. bench/connect.py runs the real server."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from lakeloop import connect_server
from lakeloop.config import ConfigError, load_config, parse_set_pairs
from lakeloop.connect_server import ConnectServerError, address, server_command
from lakeloop.jars import MissingJarsError
from lakeloop.session import SERVER_ONLY, build_spark, connect_conf

ROOT = Path(__file__).resolve().parents[2]
JARS = ("delta-spark_4.1_2.13-4.4.0.jar", "spark-sql-kafka-0-10_2.13-4.1.1.jar")


def _cfg(tmp_path: Path, *pairs: str):
    cfg = load_config(
        "test",
        parse_set_pairs([f"lakehouse_root={tmp_path / 'lake'}", *pairs]),
        project_root=ROOT,
    )
    return cfg.model_copy(update={"project_root": tmp_path})  # .connect/ under tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_must_be_a_connect_url(tmp_path):
    with pytest.raises(ConfigError, match=r"spark\.remote.*not a Spark Connect URL"):
        _cfg(tmp_path, "spark.remote=http://127.0.0.1:15002")
    cfg = _cfg(tmp_path, "spark.remote=sc://127.0.0.1:15003/;user_id=lakeloop")
    assert address(cfg.spark.remote) == ("127.0.0.1", 15003)
    assert address("sc://localhost") == ("localhost", 15002)  # Spark Connect's default port


def test_unreachable_server_names_the_url_and_how_to_start_it(tmp_path):
    url = f"sc://127.0.0.1:{_free_port()}"
    cfg = _cfg(tmp_path, f"spark.remote={url}")
    t = time.monotonic()
    with pytest.raises(ConnectServerError) as err:
        build_spark(cfg)
    message = str(err.value)
    assert url in message and "spark.remote" in message
    assert "python -m lakeloop.connect_server up --env test" in message
    assert time.monotonic() - t < 10  # no gRPC retries: the port is checked first
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ  # no client was built


def test_connect_conf_sends_session_settings_only(tmp_path):
    cfg = _cfg(tmp_path, "spark.remote=sc://127.0.0.1:15002", "spark.extra_conf.spark.sql.x=1")
    conf = connect_conf(cfg)
    assert conf["spark.sql.shuffle.partitions"] == "2"  # conf/test
    assert conf["spark.databricks.delta.snapshotPartitions"] == "2"
    assert conf["spark.sql.x"] == "1"
    assert not SERVER_ONLY & conf.keys()
    assert not [k for k in conf if k.startswith(("spark.jars", "spark.driver", "spark.app"))]


def test_server_command_has_the_jars_delta_and_the_binding(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    for name in (*JARS, "kafka-clients-3.9.1.jar"):
        (jars / name).write_bytes(b"")
    cfg = _cfg(tmp_path, "spark.remote=sc://127.0.0.1:25999", f"spark.jars_dir={jars}")
    cmd = server_command(cfg)
    assert cmd[cmd.index("--class") + 1] == connect_server.SERVER_CLASS
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert str(jars / JARS[0]) in cmd[cmd.index("--jars") + 1].split(",")
    confs = {
        cmd[i + 1].split("=", 1)[0]: cmd[i + 1].split("=", 1)[1]
        for i, a in enumerate(cmd)
        if a == "--conf"
    }
    assert confs["spark.connect.grpc.binding.port"] == "25999"
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "spark.driver.extraJavaOptions" not in confs  # a long-lived driver: full JIT
    assert cmd[-1] == "spark-internal"


def test_server_command_refuses_a_jars_folder_without_delta(tmp_path):
    empty = tmp_path / "nojars"
    empty.mkdir()
    cfg = _cfg(tmp_path, f"spark.jars_dir={empty}")
    with pytest.raises(MissingJarsError, match="delta-spark"):
        server_command(cfg)


def test_up_refuses_a_port_another_process_holds(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = _cfg(tmp_path, f"spark.remote=sc://127.0.0.1:{port}")
        with pytest.raises(ConnectServerError, match=rf"127\.0\.0\.1:{port} is taken"):
            connect_server.up(cfg, timeout_s=5)
    assert not (tmp_path / ".connect" / f"server-{port}.pid").exists()


def test_status_and_down_when_not_running(tmp_path):
    port = _free_port()
    cfg = _cfg(tmp_path, f"spark.remote=sc://127.0.0.1:{port}")
    home = tmp_path / ".connect"
    home.mkdir()
    (home / f"server-{port}.pid").write_text(str(os.getpid()))  # alive, but not a server
    assert connect_server.status(cfg)["running"] is False
    state = connect_server.down(cfg)
    assert state == {**state, "running": False, "pid": None, "url": f"sc://127.0.0.1:{port}"}
    assert not (home / f"server-{port}.pid").exists()
