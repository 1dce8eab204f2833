"""ingest_kafka: the spec's Kafka topics -> bronze Delta (+ dead letters), exactly once.

Structured Streaming with Trigger.AvailableNow and one checkpoint per pipeline source. Each
micro-batch is written with Delta's idempotent-write options (txnAppId = the checkpoint's query
id, txnVersion = the batch id), so a batch replayed after a crash or a lost checkpoint commit is
skipped by Delta instead of written twice. Messages that do not parse go to the dead-letter table
with the reason. Offsets lost to retention fail the run (failOnDataLoss) unless the spec allows it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession

from lakeloop import delta_io, runlog
from lakeloop.jobs.common import JobError, main_for
from lakeloop.kafka_io import spark_source_options
from lakeloop.schemas import struct_of
from lakeloop.spec import KafkaSource, Pipeline
from lakeloop.transforms.bronze import dead_letters, good_records, kafka_records, offset_ranges

log = logging.getLogger(__name__)
JOB = "ingest_kafka"


def checkpoint_query_id(checkpoint: str) -> str:
    """The checkpoint's stable query id, which Spark keeps in <checkpoint>/metadata. Written
    here first when the checkpoint is new, so it can name the Delta transactions: a new
    checkpoint gets a new id and its batch 0 is never mistaken for an old batch 0."""
    meta = Path(checkpoint) / "metadata"
    if not meta.exists():
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"id": str(uuid.uuid4())}) + "\n")
    return json.loads(meta.read_text().splitlines()[0])["id"]


def _merge_ranges(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for b in batches:
        for r in b["ranges"]:
            key = (r["topic"], r["partition"])
            m = merged.setdefault(
                key,
                {
                    "topic": key[0],
                    "partition": key[1],
                    "start_offset": r["start_offset"],
                    "end_offset": r["end_offset"],
                },
            )
            m["start_offset"] = min(m["start_offset"], r["start_offset"])
            m["end_offset"] = max(m["end_offset"], r["end_offset"])
    return sorted(merged.values(), key=lambda r: (r["topic"], r["partition"]))


_MAX_ATTEMPTS = 3


def _is_spark_55271(e: Exception) -> bool:
    """Spark 4.1.1's Kafka source throws an NPE from its progress metrics after the first batch
    of a restarted query when that batch is a replay (offsets/N without commits/N). The batch and
    its commit are written before the NPE, so restarting the query continues correctly."""
    msg = str(e)
    return (
        "KafkaMicroBatchStream" in msg
        or ("NullPointerException" in msg and "scala.Option.get()" in msg)
        or ("IterableOps.map" in msg and "Option.get()" in msg)
    )


def _data_loss_error(source: KafkaSource, e: Exception) -> JobError | None:
    msg = str(e)
    if "data may have been lost" in msg.lower() or "dataloss" in msg.lower().replace(" ", ""):
        return JobError(
            f"source {source.name}: Kafka data loss on topic {source.topic}: offsets the "
            f"checkpoint expects are no longer in Kafka (retention or deleted records). "
            f"Nothing was written for the lost range. To accept the loss and go on, set "
            f"fail_on_data_loss: false for this source in the spec. Detail: "
            f"{msg.splitlines()[0][:400]}"
        )
    return None


def ingest_source(
    spark: SparkSession,
    pipeline: Pipeline,
    source: KafkaSource,
    date: dt.date,
    rec: runlog.RunRecord,
) -> None:
    schema = struct_of(source.value_schema)
    bronze_path = pipeline.table_path(source.table)
    dl_path = pipeline.table_path(source.dead_letter_table)
    checkpoint = pipeline.checkpoint(source)
    app_id = f"lakeloop:{pipeline.name}:{source.name}:{checkpoint_query_id(checkpoint)}"
    batches: list[dict[str, Any]] = []

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        records = kafka_records(batch, schema, batch_id, date).persist()
        try:
            ranges = [r.asDict() for r in offset_ranges(records).collect()]
            n = sum(r["messages"] for r in ranges)
            bad = sum(r["dead_letters"] for r in ranges)
            v_bronze = v_dl = None
            if n - bad:
                v_bronze = delta_io.append_once(
                    good_records(records, schema), bronze_path, app_id, batch_id, rec.run_id
                )
            if bad:
                v_dl = delta_io.append_once(
                    dead_letters(records), dl_path, app_id, batch_id, rec.run_id
                )
            replayed = (n - bad and v_bronze is None) or (bad and v_dl is None)
            batches.append(
                {
                    "batch_id": batch_id,
                    "ranges": ranges,
                    "messages": n,
                    "dead_letters": bad,
                    "replayed": bool(replayed),
                }
            )
            rec.add_version(pipeline.spec.table(source.table), v_bronze)
            rec.add_version(pipeline.spec.table(source.dead_letter_table), v_dl)
            log.info(
                "batch %d: %d messages, %d dead letters%s",
                batch_id,
                n,
                bad,
                " (already committed by an earlier attempt: skipped)" if replayed else "",
            )
        finally:
            records.unpersist()

    for attempt in range(1, _MAX_ATTEMPTS + 1):
        query = (
            spark.readStream.format("kafka")
            .options(**spark_source_options(pipeline.cfg, source))
            .load()
            .writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .queryName(f"ingest_kafka_{pipeline.name}_{source.name}")
            .start()
        )
        try:
            query.awaitTermination()
            break
        except StreamingQueryException as e:
            if _is_spark_55271(e) and attempt < _MAX_ATTEMPTS:
                log.warning(
                    "Spark 4.1.1 Kafka source failed reporting metrics after a replayed "
                    "batch (SPARK-55271; the batch itself was committed): restarting "
                    "the query (attempt %d)",
                    attempt + 1,
                )
                continue
            raise _data_loss_error(source, e) or e from None
    ok_msgs = sum(b["messages"] - b["dead_letters"] for b in batches if not b["replayed"])
    dl = sum(b["dead_letters"] for b in batches if not b["replayed"])
    rec.input_counts[f"{source.name}.messages"] = sum(b["messages"] for b in batches)
    rec.output_counts[source.table] = rec.output_counts.get(source.table, 0) + ok_msgs
    rec.output_counts[source.dead_letter_table] = (
        rec.output_counts.get(source.dead_letter_table, 0) + dl
    )
    rec.kafka_offsets.extend(_merge_ranges(batches))
    rec.details[f"{source.name}.batches"] = str(len(batches))
    rec.details[f"{source.name}.replayed_batches"] = str(sum(b["replayed"] for b in batches))
    rec.details[f"{source.name}.checkpoint"] = checkpoint


def run(spark: SparkSession, pipeline: Pipeline, date: dt.date) -> runlog.RunRecord:
    if not pipeline.spec.sources.kafka:
        raise JobError(f"pipeline {pipeline.name} declares no Kafka sources")
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        for source in pipeline.spec.sources.kafka:
            ingest_source(spark, pipeline, source, date, rec)
    return rec


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv)
