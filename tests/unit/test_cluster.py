"""lakeloop.cluster without a JVM: the generated Hadoop files, the ports, the readiness parsing,
pid files and the errors. The real cluster runs in tests/integration/test_cluster.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lakeloop import cli, cluster, procs
from lakeloop.cluster import ClusterError, Daemon
from lakeloop.config import load_config
from tests.conftest import ROOT


def _cfg(tmp: Path, **cluster_settings):
    return load_config(
        "test",
        {
            "lakehouse_root": str(tmp / "lake"),
            "cluster": {"home": str(tmp / "c"), **cluster_settings},
        },
        project_root=ROOT,
    )


def _xml_props(path: Path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


def test_hdfs_conf_files_put_every_address_on_the_host_and_ports_of_the_config(tmp_path: Path):
    cfg = _cfg(tmp_path)
    lay = cluster.layout(cfg)
    cluster.write_hdfs_conf(cfg, lay)
    core = _xml_props(lay.hdfs_conf / "core-site.xml")
    hdfs = _xml_props(lay.hdfs_conf / "hdfs-site.xml")
    assert core["fs.defaultFS"] == "hdfs://127.0.0.1:29820"
    assert hdfs["dfs.namenode.rpc-address"] == "127.0.0.1:29820"
    assert hdfs["dfs.namenode.http-address"] == "127.0.0.1:29870"
    assert (hdfs["dfs.datanode.address"], hdfs["dfs.datanode.http.address"]) == (
        "127.0.0.1:29866",
        "127.0.0.1:29864",
    )
    assert hdfs["dfs.datanode.ipc.address"] == "127.0.0.1:29867"
    assert hdfs["dfs.replication"] == "1"
    assert hdfs["dfs.namenode.name.dir"] == (tmp_path / "c" / "hdfs" / "name").as_uri()
    assert hdfs == cluster.hdfs_site(cfg, lay)
    # the jars lack webapps/: the daemons' HTTP servers need these on the classpath
    assert (lay.hdfs_conf / "webapps" / "hdfs").is_dir()
    assert (lay.hdfs_conf / "webapps" / "datanode").is_dir()
    props = (lay.hdfs_conf / "log4j.properties").read_text()
    assert "log4j.rootLogger=INFO,console" in props and "target=System.err" in props


def test_hadoop_xml_escapes_values():
    text = cluster.hadoop_xml({"a.b": "x<y & z>", "c": "plain"})
    root = ET.fromstring(text.split("\n", 1)[1])
    assert {p.findtext("name"): p.findtext("value") for p in root} == {
        "a.b": "x<y & z>",
        "c": "plain",
    }


def test_a_developer_cluster_and_the_test_cluster_share_no_port(tmp_path: Path):
    dev = cluster.all_ports(load_config("dev", project_root=ROOT))
    test = cluster.all_ports(_cfg(tmp_path))
    assert dev["hdfs namenode_http"] == 9870 and dev["spark worker-2 ui"] == 8092
    assert set(dev.values()).isdisjoint(test.values())


def test_clashing_or_out_of_range_ports_are_errors(tmp_path: Path):
    with pytest.raises(ClusterError, match=r"hdfs namenode_http and spark worker-1 ui both on"):
        cluster.all_ports(_cfg(tmp_path, spark_ui_port=29869))
    with pytest.raises(ClusterError, match=r"cluster.hdfs_port 65530 is too high"):
        cluster.all_ports(_cfg(tmp_path, hdfs_port=65530))


JMX_READY = {
    "beans": [
        {
            "name": "Hadoop:service=NameNode,name=FSNamesystemState",
            "FSState": "Operational",
            "NumLiveDataNodes": 1,
            "NumDeadDataNodes": 0,
        }
    ]
}


def test_namenode_jmx_is_ready_with_a_live_datanode_out_of_safe_mode():
    assert cluster.parse_namenode_jmx(JMX_READY) == (1, "Operational")
    assert cluster.hdfs_ready_from_jmx(JMX_READY)
    no_dn = {"beans": [{**JMX_READY["beans"][0], "NumLiveDataNodes": 0}]}
    safe = {"beans": [{**JMX_READY["beans"][0], "FSState": "safeMode"}]}
    assert not cluster.hdfs_ready_from_jmx(no_dn)
    assert not cluster.hdfs_ready_from_jmx(safe)
    assert cluster.parse_namenode_jmx({"beans": []}) == (0, "")


def test_master_json_counts_only_alive_workers_of_an_alive_master():
    master = {
        "url": "spark://127.0.0.1:27077",
        "status": "ALIVE",
        "aliveworkers": 2,
        "workers": [
            {"id": "worker-1", "state": "ALIVE"},
            {"id": "worker-0", "state": "DEAD"},  # a restarted worker's old entry
            {"id": "worker-2", "state": "ALIVE"},
        ],
    }
    assert cluster.alive_workers(master) == 2
    assert cluster.alive_workers({**master, "status": "RECOVERING"}) == 0
    assert cluster.alive_workers({"status": "ALIVE"}) == 0


def test_down_and_status_when_nothing_runs(tmp_path: Path):
    cfg = _cfg(tmp_path)
    result = cluster.down(cfg)
    assert result["stopped"] == [] and not (tmp_path / "c").exists()
    assert result["ready"] == {"hdfs": False, "spark": False, "mlflow": False}
    names = [d["name"] for d in result["daemons"]]
    assert names == [
        "namenode",
        "datanode",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "mlflow",
    ]
    assert (
        cli.main(["cluster", "status", "--env", "test", "--set", f"cluster.home={tmp_path}"]) == 3
    )


def _sleeper(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *extra], start_new_session=True
    )


def test_down_stops_only_this_clusters_processes(tmp_path: Path):
    cfg = _cfg(tmp_path)
    lay = cluster.layout(cfg)
    (lay.home / "run").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stranger = _sleeper()  # someone else's process (no marker): a recycled pid
    ours = _sleeper(lay.marker("spark-master"))
    other_home = _sleeper(f"-Dlakeloop.daemon={tmp_path / 'elsewhere'}#datanode")
    lay.pid_file("namenode").write_text(str(dead.pid))
    lay.pid_file("spark-worker-1").write_text(str(stranger.pid))
    lay.pid_file("spark-master").write_text(str(ours.pid))
    lay.pid_file("datanode").write_text(str(other_home.pid))
    try:
        assert [d["name"] for d in cluster.status(cfg)["daemons"] if d["running"]] == [
            "spark-master"
        ]
        result = cluster.down(cfg, grace_s=10)
        assert result["stopped"] == ["spark-master"]
        assert not procs.alive(ours.pid)  # stopped (and reaped: it is our child)
        assert stranger.poll() is None and other_home.poll() is None  # never touched
        assert list((lay.home / "run").iterdir()) == []  # the stale pid files are gone
    finally:
        for p in (stranger, ours, other_home):
            p.kill()
            p.wait()


def test_missing_hdfs_jars_is_a_one_line_error_before_anything_starts(tmp_path: Path, caplog):
    args = ["cluster", "up", "--env", "test", "--set", f"cluster.home={tmp_path / 'c'}"]
    args += ["--set", f"cluster.hdfs_jars_dir={tmp_path / 'nojars'}"]
    assert cli.main(args) == 1
    msg = caplog.records[-1].getMessage()
    assert msg.startswith("cluster up failed: HDFS jars missing in")
    assert "hadoop-hdfs-client" in msg and "set in the config (cluster.hdfs_jars_dir)" in msg
    assert "Traceback" not in caplog.text
    assert not (tmp_path / "c" / "run").exists()


def _fake(tmp: Path, code: str, ports: tuple = ()) -> tuple[cluster.Layout, Daemon]:
    lay = cluster.Layout(tmp)
    d = Daemon("fake", "spark", (sys.executable, "-c", code), "fake-marker", "http://x", ports)
    return lay, d


def test_a_daemon_that_dies_while_starting_shows_its_log(tmp_path: Path):
    lay, d = _fake(tmp_path, "print('Error: no class org.example.Gone'); raise SystemExit(3)")
    proc = cluster._start(lay, d, "127.0.0.1")
    with pytest.raises(ClusterError, match=r"(?s)fake exited with 3.*no class org.example.Gone"):
        cluster.wait_ready(lay, [(d, proc)], lambda: False, "spark", timeout_s=30)


def test_a_daemon_that_never_gets_ready_times_out_with_its_log(tmp_path: Path):
    lay, d = _fake(
        tmp_path, "print('still waiting for the master', flush=True); import time; time.sleep(60)"
    )
    proc = cluster._start(lay, d, "127.0.0.1")
    try:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match=r"(?s)spark not ready within 1s.*still waiting"):
            cluster.wait_ready(lay, [(d, proc)], lambda: False, "spark", timeout_s=1)
        assert time.monotonic() - t0 < 5
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_port_taken_by_another_process_is_an_error(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        lay, d = _fake(tmp_path, "pass", (("mlflow", port),))
        with pytest.raises(ClusterError, match=rf"port {port} \(mlflow\) is taken"):
            cluster._start(lay, d, "127.0.0.1")
    assert not lay.pid_file("fake").exists()


def test_up_when_everything_runs_and_answers_starts_nothing(tmp_path: Path, monkeypatch):
    cfg = _cfg(tmp_path)
    monkeypatch.setattr(cluster, "hdfs_jars", lambda d: [])
    monkeypatch.setattr(cluster, "_pid", lambda lay, d: 4242)
    for part in cluster.PARTS:
        monkeypatch.setitem(cluster.PARTS, part, lambda c: True)

    def no_start(*a):
        raise AssertionError("up started a daemon of a running cluster")

    monkeypatch.setattr(cluster, "_start", no_start)
    monkeypatch.setattr(cluster, "_format_namenode", no_start)
    result = cluster.up(cfg)
    assert result["started"] == [] and all(result["ready"].values())
