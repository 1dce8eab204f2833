"""`lakeloop kafka create-topics`: the spec's topics with their partitions and retention,
idempotent, never shrinking or deleting; and `ingest_kafka` failing clearly on a missing topic
(before anything touches Kafka through Spark, so whether the broker auto-creates does not
matter)."""

import datetime as dt
import json
import socket
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from lakeloop import cli, delta_io, runlog
from lakeloop.config import ConfigError
from lakeloop.jobs import ingest_kafka
from lakeloop.kafka_io import python_client_config
from tests.conftest import spec_variant

pytestmark = pytest.mark.kafka
HOUR_MS = 3_600_000


def _spec(cfg, tmp_path, topic: str, **kafka) -> tuple:
    def edit(d):
        d["sources"]["kafka"][0].update(topic=topic, **kafka)

    return spec_variant(cfg, tmp_path, edit)


def _cli(path: Path, root: Path, *args: str) -> list[str]:
    return [*args, "--pipeline", str(path), "--env", "test", "--set", f"lakehouse_root={root}"]


def _described(p, topic: str) -> tuple[int, str | None, str | None]:
    """(partitions, retention.ms, its config source) per the broker's admin API."""
    admin = KafkaAdminClient(**python_client_config(p.cfg, p.spec.sources.kafka[0]))
    try:
        if topic not in admin.list_topics():
            return 0, None, None
        (desc,) = admin.describe_topics([topic])
        res = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": None})
        conf = admin.describe_configs([res], config_filter="all")["topic"][topic]["retention.ms"]
        return len(desc["partitions"]), conf["value"], conf["config_source"]
    finally:
        admin.close()


def test_create_topics_creates_reruns_as_a_no_op_grows_and_refuses_to_shrink(
    cfg, tmp_path, broker, capsys, caplog
):
    topic = f"test.topics.{uuid.uuid4().hex[:10]}"
    p, path = _spec(cfg, tmp_path, topic, partitions=3, retention_ms=HOUR_MS)
    assert _described(p, topic)[0] == 0  # a fresh name: nothing there yet

    assert cli.main(_cli(path, p.root, "kafka", "create-topics")) == 0
    (made,) = json.loads(capsys.readouterr().out)
    assert (made["topic"], made["partitions"], made["changes"]) == (topic, 3, ["created"])
    assert _described(p, topic) == (3, str(HOUR_MS), "DYNAMIC_TOPIC_CONFIG")

    assert cli.main(_cli(path, p.root, "kafka", "create-topics")) == 0  # again: nothing to do
    (again,) = json.loads(capsys.readouterr().out)
    assert again["changes"] == [] and again["retention_ms"] == HOUR_MS
    assert _described(p, topic) == (3, str(HOUR_MS), "DYNAMIC_TOPIC_CONFIG")

    # more partitions and another retention in the spec: increased and altered in place
    p5, path5 = _spec(cfg, tmp_path, topic, partitions=5, retention_ms=2 * HOUR_MS)
    assert cli.main(_cli(path5, p5.root, "kafka", "create-topics")) == 0
    (grown,) = json.loads(capsys.readouterr().out)
    assert grown["changes"] == ["partitions 3 -> 5", f"retention.ms {HOUR_MS} -> {2 * HOUR_MS}"]
    assert _described(p, topic) == (5, str(2 * HOUR_MS), "DYNAMIC_TOPIC_CONFIG")
    assert "partitions increased from 3 to 5" in caplog.text

    # fewer partitions than the topic has: an error that says so; the topic is left alone
    p2, path2 = _spec(cfg, tmp_path, topic, partitions=2)
    caplog.clear()
    assert cli.main(_cli(path2, p2.root, "kafka", "create-topics")) == 1
    (refused,) = json.loads(capsys.readouterr().out)
    assert f"topic {topic} on 127.0.0.1:29092 has 5 partitions, more than " in refused["error"]
    assert "sources.kafka[sales].partitions = 2" in refused["error"]
    assert "set partitions: 5 in the spec" in caplog.text
    assert _described(p, topic) == (5, str(2 * HOUR_MS), "DYNAMIC_TOPIC_CONFIG")


def test_create_topics_needs_a_pipeline(caplog):
    assert cli.main(["kafka", "create-topics", "--env", "test"]) == 2
    assert "kafka create-topics needs --pipeline" in caplog.text


def test_ingest_of_a_missing_topic_fails_before_touching_it_and_writes_nothing(
    spark, cfg, tmp_path, broker, caplog
):
    topic = f"test.missing.{uuid.uuid4().hex[:10]}"
    p, path = _spec(cfg, tmp_path, topic)
    args = _cli(path, p.root, "run", "ingest_kafka", "--date", "2026-01-01")
    assert cli.main(args) == 1
    want = (
        f"ingest_kafka failed: topic {topic} (sources.kafka[sales]) does not exist on "
        f"127.0.0.1:29092: run `lakeloop kafka create-topics --pipeline {path} --env test`"
    )
    assert want in caplog.text and "Traceback" not in caplog.text
    # Spark's consumer never asked for it: a broker with auto-create on would have made it
    assert _described(p, topic)[0] == 0
    source = p.spec.sources.kafka[0]
    for key in ("bronze_sales", "dead_letter"):
        assert delta_io.version(spark, p.table_path(key)) is None, key
    assert not Path(p.checkpoint(source)).exists()
    assert not Path(p.checkpoint(source) + ".lock").exists()
    (run,) = runlog.runs(spark, p).where("job = 'ingest_kafka'").collect()
    assert run.status == "failed" and "does not exist on" in run.error
    assert run.run_date == dt.date(2026, 1, 1)
    # with the topic created as the message says, the same run goes through
    assert cli.main(_cli(path, p.root, "kafka", "create-topics")) == 0
    rec = ingest_kafka.run(spark, p, dt.date(2026, 1, 1))
    assert rec.status == "succeeded" and rec.input_counts["sales.messages"] == 0


def test_topic_settings_are_checked_when_the_spec_loads(cfg, tmp_path):
    with pytest.raises(ConfigError) as e:
        _spec(cfg, tmp_path, "t", partitions=0, retention_ms=-5)
    msg = str(e.value)
    assert "key sources.kafka.0.partitions: Input should be greater than or equal to 1" in msg
    assert "key sources.kafka.0.retention_ms: Input should be greater than or equal to -1" in msg


def test_ingest_with_no_broker_answering_fails_within_the_timeout_and_writes_nothing(
    spark, cfg, tmp_path, caplog
):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p, path = _spec(
        cfg, tmp_path, "test.nobroker", bootstrap_servers=f"127.0.0.1:{port}", broker_timeout_s=3
    )
    t0 = time.monotonic()
    assert cli.main(_cli(path, p.root, "run", "ingest_kafka", "--date", "2026-01-01")) == 1
    # the source's 3 s for the broker, plus the job's own start and end in this process
    assert time.monotonic() - t0 < 25  # kafka-python's own bootstrap wait is 30 s
    want = f"ingest_kafka failed: source sales: Kafka at 127.0.0.1:{port} does not answer"
    assert want in caplog.text and "nothing was written" in caplog.text
    assert "Traceback" not in caplog.text
    source = p.spec.sources.kafka[0]
    for key in ("bronze_sales", "dead_letter"):
        assert delta_io.version(spark, p.table_path(key)) is None, key
    assert not Path(p.checkpoint(source)).exists()
