"""One session-scoped SparkSession (local[2], UI off, 2 shuffle partitions, Delta + Kafka jars),
per-test lakehouse folders, and the real Kafka broker started through the project's own code."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from lakeloop import kafka_broker
from lakeloop.config import load_config
from lakeloop.kafka_io import ensure_topic
from lakeloop.session import build_spark
from lakeloop.spec import Pipeline, load_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    # a long-lived driver (the whole test session): the full JIT pays off, unlike a job's
    overrides = {
        "lakehouse_root": str(tmp_path_factory.mktemp("lakehouse")),
        "spark": {"driver_java_options": ""},
    }
    cfg = load_config("test", overrides, project_root=ROOT)
    session = build_spark(cfg, app_name="lakeloop-tests")
    yield session
    session.stop()


@pytest.fixture
def cfg(tmp_path):
    return load_config("test", {"lakehouse_root": str(tmp_path / "lakehouse")}, project_root=ROOT)


@pytest.fixture
def houses(cfg) -> Pipeline:
    return load_pipeline(cfg, "houses")


def spec_variant(cfg, tmp_path: Path, edit) -> tuple[Pipeline, Path]:
    """The houses spec with `edit(dict)` applied, written to a file (for subprocess jobs too)."""
    data = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    edit(data)
    path = tmp_path / f"spec-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_pipeline(cfg, str(path)), path


@pytest.fixture(scope="session")
def broker():
    """The project's broker via lakeloop.kafka_broker (what `lakeloop kafka up` runs). Left
    running if it was already up before the tests; stopped at the end if the tests started it."""
    cfg = load_config("test", {"lakehouse_root": "/tmp/unused"}, project_root=ROOT)
    was_up = kafka_broker.status(cfg)["answers"]
    state = kafka_broker.up(cfg)
    assert state["answers"], state
    yield cfg
    if not was_up:
        kafka_broker.down(cfg)


@pytest.fixture
def kafka_houses(cfg, tmp_path, broker) -> tuple[Pipeline, Path]:
    """houses with its own topic (so tests never share Kafka state), created with two
    partitions as `lakeloop kafka create-topics` does (never by broker auto-create), and small
    micro-batches."""
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"

    def edit(d):
        d["sources"]["kafka"][0].update(topic=topic, partitions=2, max_offsets_per_trigger=100)

    pipeline, path = spec_variant(cfg, tmp_path, edit)
    state = ensure_topic(pipeline.cfg, pipeline.spec.sources.kafka[0])
    assert state.changes == ("created",) and state.partitions == 2, state
    return pipeline, path
