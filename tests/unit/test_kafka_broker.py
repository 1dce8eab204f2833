"""A second, private broker (other ports, temp data dir) to test up/up/down/status."""

import pytest

from lakeloop import kafka_broker
from lakeloop.config import load_config
from tests.conftest import ROOT


@pytest.mark.kafka
def test_up_twice_then_down_cleanly(tmp_path):
    cfg = load_config(
        "test",
        {
            "lakehouse_root": str(tmp_path / "lh"),
            "kafka": {
                "broker": {
                    "port": 19092,
                    "controller_port": 19093,
                    "data_dir": str(tmp_path / "kafka"),
                }
            },
        },
        project_root=ROOT,
    )
    try:
        first = kafka_broker.up(cfg)
        assert first["answers"] and first["bootstrap"] == "127.0.0.1:19092"
        assert (tmp_path / "kafka/kraft-data/meta.properties").exists()
        second = kafka_broker.up(cfg)  # harmless
        assert second["pid"] == first["pid"]
    finally:
        stopped = kafka_broker.down(cfg)
    assert not stopped["running"] and not kafka_broker.status(cfg)["answers"]
    assert "shut down completed" in (tmp_path / "kafka/logs/server.log").read_text()
    assert kafka_broker.down(cfg)["running"] is False  # stopping twice is harmless too


def test_missing_broker_jars_name_the_fix(tmp_path):
    cfg = load_config(
        "test",
        {
            "lakehouse_root": str(tmp_path),
            "kafka": {
                "broker": {
                    "port": 19094,
                    "controller_port": 19095,
                    "data_dir": str(tmp_path / "k"),
                    "jars_dir": str(tmp_path / "nojars"),
                }
            },
        },
        project_root=ROOT,
    )
    with pytest.raises(kafka_broker.BrokerError, match="make kafka-jars"):
        kafka_broker.up(cfg)
