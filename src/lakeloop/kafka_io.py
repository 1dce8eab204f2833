"""Kafka client settings from the config, for kafka-python and for Spark's Kafka source."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from lakeloop.config import AppConfig
from lakeloop.spec import KafkaSource


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
    """The topic's partition ids per the broker (empty when the topic does not exist)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(**python_client_config(cfg, source))
    except KafkaError as e:
        raise ConnectionError(
            f"Kafka at {bootstrap(cfg, source)} does not answer ({type(e).__name__})"
        ) from None
    try:
        return sorted(consumer.partitions_for_topic(source.topic) or [])
    finally:
        consumer.close()


def ensure_topic(cfg: AppConfig, source: KafkaSource, partitions: int | None = None) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**python_client_config(cfg, source))
    try:
        if source.topic in admin.list_topics():
            return
        n = partitions or cfg.kafka.broker.num_partitions
        try:
            admin.create_topics([NewTopic(source.topic, num_partitions=n, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()
