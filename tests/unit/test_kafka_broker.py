"""A second, private broker (other ports, temp data dir) to test up/up/down/status and its
settings (no topic auto-create)."""

import pytest

from lakeloop import kafka_broker
from lakeloop.config import load_config
from tests.conftest import ROOT


def _broker_config(cfg, key: str) -> str:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    b = cfg.kafka.broker
    admin = KafkaAdminClient(bootstrap_servers=f"{b.host}:{b.port}")
    try:
        res = ConfigResource(ConfigResourceType.BROKER, "1", configs={key: None})
        return admin.describe_configs([res], config_filter="all")["broker"]["1"][key]["value"]
    finally:
        admin.close()


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
        assert _broker_config(cfg, "auto.create.topics.enable") == "false"  # create-topics does
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
