"""Kafka client settings from the config, for kafka-python and for Spark's Kafka source, and
the spec's topics as `lakeloop kafka create-topics` creates them (the broker never auto-creates
a topic: auto.create.topics.enable=false)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from lakeloop.config import AppConfig
from lakeloop.spec import KafkaSource, Pipeline

log = logging.getLogger(__name__)
RETENTION = "retention.ms"


def _plain(secret: SecretStr | None) -> str | None:
    """The value, at the one place it is handed to a client (never logged)."""
    return secret.get_secret_value() if secret is not None else None


def bootstrap(cfg: AppConfig, source: KafkaSource | None = None) -> str:
    return (source.bootstrap_servers if source else None) or cfg.kafka.bootstrap_servers


def python_client_config(cfg: AppConfig, source: KafkaSource | None = None) -> dict[str, Any]:
    k = cfg.kafka
    conf: dict[str, Any] = {
        "bootstrap_servers": bootstrap(cfg, source),
        "security_protocol": k.security_protocol,
    }
    if k.sasl_mechanism:
        conf["sasl_mechanism"] = k.sasl_mechanism
        conf["sasl_plain_username"] = _plain(cfg.secret(k.sasl_username_env))
        conf["sasl_plain_password"] = _plain(cfg.secret(k.sasl_password_env))
    return conf


def spark_source_options(
    cfg: AppConfig, source: KafkaSource, starting_offsets: str | None = None
) -> dict[str, str]:
    """Options of Spark's Kafka source. `starting_offsets` (a JSON of offsets per partition)
    replaces the spec's `starting_offsets` for a query with a new checkpoint. A broker that
    stops answering fails the run within `source.broker_timeout_s`, not Spark's 2 minutes."""
    k = cfg.kafka
    timeout_ms = str(int(source.broker_timeout_s * 1000))
    opts = {
        "kafka.bootstrap.servers": bootstrap(cfg, source),
        "subscribe": source.topic,
        "startingOffsets": starting_offsets or source.starting_offsets,
        "failOnDataLoss": str(source.fail_on_data_loss).lower(),
        "kafka.security.protocol": k.security_protocol,
        "kafkaConsumer.pollTimeoutMs": timeout_ms,
        "kafka.request.timeout.ms": timeout_ms,
        "kafka.default.api.timeout.ms": timeout_ms,
        "fetchOffset.numRetries": "3",
        "fetchOffset.retryIntervalMs": "1000",
    }
    if source.max_offsets_per_trigger:
        opts["maxOffsetsPerTrigger"] = str(source.max_offsets_per_trigger)
    if k.sasl_mechanism:
        user = _plain(cfg.secret(k.sasl_username_env))
        pwd = _plain(cfg.secret(k.sasl_password_env))
        opts["kafka.sasl.mechanism"] = k.sasl_mechanism
        opts["kafka.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{pwd}";'
        )
    return opts


def topic_partitions(cfg: AppConfig, source: KafkaSource) -> list[int]:
    """The topic's partition ids per the broker (empty when the topic does not exist). Asked
    through the admin client: a consumer probes the broker's API versions first (~0.1 s of a
    run's fixed cost; the admin client's answer takes ~10 ms)."""
    from kafka.errors import KafkaError

    admin = _admin(cfg, source)
    try:
        desc = _description(admin, source.topic)
    except KafkaError as e:
        raise ConnectionError(
            f"Kafka at {bootstrap(cfg, source)} does not answer ({type(e).__name__})"
        ) from None
    finally:
        admin.close()
    return [] if desc is None else sorted(p["partition_index"] for p in desc["partitions"])


class TopicError(RuntimeError):
    """A topic on the broker that contradicts the spec in a way lakeloop does not repair (it
    never deletes a topic), or a create/alter the broker refused."""


@dataclass(frozen=True)
class TopicState:
    """A topic after `ensure_topic`: its settings on the broker and what the call changed."""

    topic: str
    bootstrap: str
    partitions: int
    replication_factor: int
    retention_ms: int | None  # the effective value (the topic's or the broker's default)
    retention_source: str  # "topic" (set on the topic) or "broker" (the broker's default)
    changes: tuple[str, ...]  # empty: the topic already was as the spec says


def admin_client(config: dict[str, Any], timeout_s: float):
    """A kafka-python admin client that waits at most `timeout_s` for the broker: for each
    request and for its first connection (kafka-python's bootstrap otherwise waits 30 s)."""
    from kafka import KafkaAdminClient

    timeout_ms = int(timeout_s * 1000)
    return KafkaAdminClient(
        **config, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
    )


def _admin(cfg: AppConfig, source: KafkaSource):
    from kafka.errors import KafkaError

    try:
        return admin_client(python_client_config(cfg, source), source.broker_timeout_s)
    except KafkaError as e:
        raise ConnectionError(
            f"Kafka at {bootstrap(cfg, source)} does not answer ({type(e).__name__})"
        ) from None


def _description(admin, topic: str) -> dict | None:
    """The broker's description of the topic (its `partitions`), None when it does not exist."""
    (desc,) = admin.describe_topics([topic])
    if desc["error_code"] == 3 or not desc["partitions"]:  # UNKNOWN_TOPIC_OR_PARTITION
        return None
    if desc["error_code"]:
        raise TopicError(f"describing topic {topic} failed: Kafka error {desc['error_code']}")
    return desc


def _describe(admin, topic: str) -> tuple[int, int] | None:
    """(partitions, replication factor) of the topic, None when it does not exist."""
    desc = _description(admin, topic)
    if desc is None:
        return None
    parts = desc["partitions"]
    return len(parts), min(len(p["replica_nodes"]) for p in parts)


def _retention(admin, topic: str) -> tuple[int | None, str]:
    from kafka.admin import ConfigResource, ConfigResourceType

    res = ConfigResource(ConfigResourceType.TOPIC, topic, configs={RETENTION: None})
    entry = admin.describe_configs([res], config_filter="all")["topic"][topic].get(RETENTION)
    if not entry:
        return None, "broker"
    source = "topic" if entry["config_source"] == "DYNAMIC_TOPIC_CONFIG" else "broker"
    return int(entry["value"]), source


def _create(admin, source: KafkaSource, where: str) -> bool:
    """Create the topic as the spec says; False when another client created it meanwhile."""
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    options: dict[str, Any] = {
        "num_partitions": source.partitions,
        "replication_factor": source.replication_factor,
        "configs": {RETENTION: str(source.retention_ms)} if source.retention_ms is not None else {},
    }
    try:
        admin.create_topics({source.topic: options}, wait_for_metadata=True)
    except TopicAlreadyExistsError:
        return False
    except KafkaError as e:
        raise TopicError(
            f"creating topic {source.topic} on {where} (sources.kafka[{source.name}]: "
            f"{source.partitions} partition(s), replication factor {source.replication_factor}) "
            f"failed: {type(e).__name__}: {_first_line(e)}"
        ) from None
    return True


def _first_line(e: Exception) -> str:
    msg = str(e)
    if "error_message='" in msg:  # kafka-python quotes the broker's own message
        return msg.split("error_message='", 1)[1].split("'", 1)[0]
    return msg.splitlines()[0][:300]


def ensure_topic(cfg: AppConfig, source: KafkaSource) -> TopicState:
    """The source's topic with the spec's partitions, replication factor and retention.

    Idempotent: a missing topic is created; an existing one with fewer partitions gets more
    (create_partitions; logged: a key's new messages may go to another partition than its old
    ones); a retention that differs from a set `retention_ms` is altered (incrementally: other
    topic settings are kept). More partitions than the spec, or another replication factor, is
    a TopicError that says what to do: Kafka cannot remove partitions and lakeloop never
    deletes a topic."""
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError

    where = bootstrap(cfg, source)
    key = f"sources.kafka[{source.name}]"
    admin = _admin(cfg, source)
    try:
        changes: list[str] = []
        have = _describe(admin, source.topic)
        if have is None and _create(admin, source, where):
            changes.append("created")
            log.info(
                "created topic %s on %s: %d partition(s), replication factor %d, %s",
                source.topic,
                where,
                source.partitions,
                source.replication_factor,
                f"retention.ms {source.retention_ms}"
                if source.retention_ms is not None
                else "the broker's retention",
            )
            have = (source.partitions, source.replication_factor)
        have = have or _describe(admin, source.topic)
        if have is None:
            raise TopicError(f"topic {source.topic} on {where} was created but is not visible")
        partitions, replicas = have
        if partitions > source.partitions:
            raise TopicError(
                f"topic {source.topic} on {where} has {partitions} partitions, more than "
                f"{key}.partitions = {source.partitions}. Kafka cannot remove partitions and "
                f"lakeloop never deletes a topic: set partitions: {partitions} in the spec (or "
                "delete and recreate the topic yourself, losing its messages)"
            )
        if replicas != source.replication_factor:
            raise TopicError(
                f"topic {source.topic} on {where} has replication factor {replicas}, "
                f"{key}.replication_factor is {source.replication_factor}. Changing it needs "
                f"a partition reassignment (kafka-reassign-partitions.sh), which lakeloop does "
                f"not do: set replication_factor: {replicas} in the spec or reassign the topic"
            )
        if partitions < source.partitions:
            try:
                admin.create_partitions({source.topic: source.partitions})
            except KafkaError as e:
                raise TopicError(
                    f"increasing topic {source.topic} on {where} from {partitions} to "
                    f"{source.partitions} partitions failed: {_first_line(e)}"
                ) from None
            log.warning(
                "topic %s on %s: partitions increased from %d to %d (%s.partitions); new "
                "messages of a key may go to another partition than its earlier ones",
                source.topic,
                where,
                partitions,
                source.partitions,
                key,
            )
            changes.append(f"partitions {partitions} -> {source.partitions}")
        retention, origin = _retention(admin, source.topic)
        if source.retention_ms is not None and retention != source.retention_ms:
            res = ConfigResource(
                ConfigResourceType.TOPIC,
                source.topic,
                configs={RETENTION: str(source.retention_ms)},
            )
            result = admin.alter_configs([res])["topic"][source.topic]
            if result != "OK":
                raise TopicError(
                    f"setting {RETENTION}={source.retention_ms} on topic {source.topic} "
                    f"({where}) failed: {result}"
                )
            log.info(
                "topic %s on %s: %s %s -> %s (%s.retention_ms)",
                source.topic,
                where,
                RETENTION,
                retention,
                source.retention_ms,
                key,
            )
            changes.append(f"{RETENTION} {retention} -> {source.retention_ms}")
            retention, origin = source.retention_ms, "topic"
        if not changes:
            log.info("topic %s on %s is as the spec says: nothing to do", source.topic, where)
        return TopicState(
            topic=source.topic,
            bootstrap=where,
            partitions=max(partitions, source.partitions),
            replication_factor=replicas,
            retention_ms=retention,
            retention_source=origin,
            changes=tuple(changes),
        )
    except KafkaError as e:
        raise TopicError(
            f"topic {source.topic} on {where}: {type(e).__name__}: {_first_line(e)}"
        ) from None
    finally:
        admin.close()


def pipeline_arg(pipeline: Pipeline) -> str:
    """How to name the pipeline on the command line: its name for conf/pipelines/<name>.yaml,
    else the spec file's path."""
    cfg, f = pipeline.cfg, pipeline.source_file
    default = cfg.path(cfg.pipelines_dir) / f"{pipeline.name}.yaml"
    if f is None or f.resolve() == default.resolve():
        return pipeline.name
    return str(f)


def missing_topic_message(pipeline: Pipeline, source: KafkaSource) -> str:
    return (
        f"topic {source.topic} (sources.kafka[{source.name}]) does not exist on "
        f"{bootstrap(pipeline.cfg, source)}: run `lakeloop kafka create-topics --pipeline "
        f"{pipeline_arg(pipeline)} --env {pipeline.cfg.env}`, which creates the spec's topics "
        "(the broker does not auto-create them)"
    )
