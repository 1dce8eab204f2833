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
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog, storage
from lakeloop.jobs.common import JobError, main_for, observed
from lakeloop.kafka_io import TopicError, bootstrap, spark_source_options, topic_partitions
from lakeloop.schemas import KAFKA_LINEAGE, STATS_COLUMNS
from lakeloop.spec import KafkaSource, Pipeline
from lakeloop.transforms.bronze import (
    batch_stats,
    dead_letters,
    good_records,
    kafka_records,
    offset_ranges,
    parsed_once,
    ranges_of,
)

log = logging.getLogger(__name__)
JOB = "ingest_kafka"
BRONZE_PROPERTIES = delta_io.stats_properties(STATS_COLUMNS["bronze_kafka"])


def checkpoint_query_id(spark: SparkSession, checkpoint: str) -> str:
    """The checkpoint's stable query id, which Spark keeps in <checkpoint>/metadata. Written
    here first when the checkpoint is new, so it can name the Delta transactions: a new
    checkpoint gets a new id and its batch 0 is never mistaken for an old batch 0."""
    meta = f"{checkpoint}/metadata"
    storage.create_exclusive(spark, meta, json.dumps({"id": str(uuid.uuid4())}) + "\n")
    return json.loads(storage.read_text(spark, meta).splitlines()[0])["id"]


@contextmanager
def source_lock(spark: SparkSession, checkpoint: str, source: KafkaSource, run_id: str):
    """One ingest of a source at a time: a lock file beside its checkpoint, created atomically.
    A lock left by a process of this host that no longer exists (killed) is taken over."""
    lock = f"{checkpoint}.lock"
    owner = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if not storage.create_exclusive(spark, lock, json.dumps(owner)):
        held = json.loads(storage.read_text(spark, lock) or "{}")
        pid = held.get("pid")
        gone = not isinstance(pid, int) or not runlog.process_alive(pid)
        if held.get("host") == owner["host"] and gone:
            log.warning(
                "taking over the lock of run %s (process gone): %s", held.get("run_id"), lock
            )
            storage.delete(spark, lock)
        if not storage.create_exclusive(spark, lock, json.dumps(owner)):
            raise JobError(
                f"source {source.name} is already being ingested: run {held.get('run_id')} "
                f"(pid {held.get('pid')} on {held.get('host')}, since {held.get('since')}) "
                f"holds {lock}. Wait for it to finish; if that run is dead, delete the lock file"
            )
    try:
        yield
    finally:
        storage.delete(spark, lock)


def resume_offsets(
    spark: SparkSession, pipeline: Pipeline, source: KafkaSource, checkpoint: str
) -> str | None:
    """Starting offsets for a query whose checkpoint has no offsets yet (new, or deleted) while
    bronze + dead letters already hold messages of the topic: per partition, the highest
    offset they hold + 1 (earliest for a partition they have none of), as Spark's JSON. None
    when the checkpoint has offsets (Spark resumes from it) or nothing was ingested yet."""
    if storage.has_children(spark, f"{checkpoint}/offsets"):
        return None
    frames = [
        delta_io.read(spark, path).where(F.col("_topic") == source.topic)
        for path in (
            pipeline.table_path(source.table),
            pipeline.table_path(source.dead_letter_table),
        )
        if delta_io.version(spark, path) is not None
    ]
    if not frames:
        return None
    ingested = frames[0].select("_partition", "_offset")
    for f in frames[1:]:
        ingested = ingested.unionByName(f.select("_partition", "_offset"))
    done = {
        r["_partition"]: r["next"]
        for r in ingested.groupBy("_partition").agg((F.max("_offset") + 1).alias("next")).collect()
    }
    if not done:
        return None
    try:
        partitions = topic_partitions(pipeline.cfg, source)
    except (ConnectionError, TopicError) as e:
        raise JobError(f"source {source.name}: {e}; nothing was written") from None
    offsets = {str(p): done.get(p, -2) for p in partitions}  # -2: earliest
    log.warning(
        "source %s: checkpoint %s has no offsets but the tables hold topic %s up to %s: "
        "starting after them (nothing is appended twice)",
        source.name,
        checkpoint,
        source.topic,
        done,
    )
    return json.dumps({source.topic: offsets})


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


def _broker_error(pipeline: Pipeline, source: KafkaSource, e: Exception) -> JobError | None:
    msg = str(e)
    markers = ("TimeoutException", "Failed to get records", "Timed out", "timed out")
    if not any(m in msg for m in markers):
        return None
    return JobError(
        f"source {source.name}: the Kafka broker at {bootstrap(pipeline.cfg, source)} did not "
        f"answer within {source.broker_timeout_s:g}s (topic {source.topic}). Batches committed "
        "before it stopped are kept, the unfinished one was not written: re-run when the "
        f"broker is back (nothing is lost or duplicated). Detail: {msg.splitlines()[0][:300]}"
    )


def add_new_lineage_columns(spark: SparkSession, path: str) -> None:
    """Add to an existing bronze or dead-letter table the lineage columns it lacks (written by
    an older lakeloop, e.g. before `_event_date`), so the appends fit its schema; the rows
    written before hold null there. A metadata-only Delta commit, once per table."""
    if delta_io.version(spark, path) is None:
        return
    have = set(delta_io.read(spark, path).columns)
    missing = [f for f in KAFKA_LINEAGE.fields if f.name not in have and f.nullable]
    if missing:
        cols = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({cols})")
        log.warning("%s: added column(s) %s (null for the rows written before)", path, cols)


def ingest_source(
    spark: SparkSession,
    pipeline: Pipeline,
    source: KafkaSource,
    date: dt.date,
    rec: runlog.RunRecord,
    partitions: list[int],
) -> None:
    """The source's new messages -> bronze + dead letters. `partitions`: the topic's partition
    ids as the run started (a batch reading another one is still counted, a slower way)."""
    columns = source.value_schema
    bronze_path = pipeline.table_path(source.table)
    dl_path = pipeline.table_path(source.dead_letter_table)
    for path in (bronze_path, dl_path):
        add_new_lineage_columns(spark, path)
    checkpoint = pipeline.checkpoint(source)
    starting = resume_offsets(spark, pipeline, source, checkpoint)
    app_id = f"lakeloop:{pipeline.name}:{source.name}:{checkpoint_query_id(spark, checkpoint)}"
    batches: list[dict[str, Any]] = []
    if starting:
        rec.details[f"{source.name}.resumed_from_tables"] = starting

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        """One pass over the batch in the common case: the good records' append computes the
        batch's counts and offset ranges (observe); the batch is read again only for dead
        letters, or to count a batch replayed after a crash (not cached: one pass will do)."""
        records = kafka_records(
            batch, columns, batch_id, date, source.event_time_field, pipeline.spec.timezone
        )
        obs = Observation(f"kafka_batch_{source.name}_{batch_id}")
        counting = records.observe(obs, *batch_stats(partitions))
        wrote, v_bronze = delta_io.append_once(
            good_records(counting, columns),
            bronze_path,
            app_id,
            batch_id,
            rec.run_id,
            BRONZE_PROPERTIES,
        )
        # the observed counts exist once the append ran; a replayed batch (or an append
        # Delta skipped) is counted by an aggregate of its own
        committed = wrote and v_bronze is not None
        stats = (committed and observed(obs)) or records.agg(
            *batch_stats(partitions)
        ).first().asDict()
        if stats["other"]:  # a partition added during the run: count per partition the long way
            ranges = [r.asDict() for r in offset_ranges(records).collect()]
        else:
            ranges = ranges_of(stats, source.topic, partitions)
        n, bad = stats["messages"], stats["dead_letters"]
        v_dl = (
            delta_io.append_once(
                dead_letters(parsed_once(records, f"kafka_dead_letters_{source.name}_{batch_id}")),
                dl_path,
                app_id,
                batch_id,
                rec.run_id,
                BRONZE_PROPERTIES,
            )[1]
            if bad
            else None
        )
        replayed = (n - bad > 0 and not committed) or (bad > 0 and v_dl is None)
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

    try:
        _run_query(spark, pipeline, source, checkpoint, starting, write_batch)
    finally:  # a failed run still records the batches it committed
        _record(rec, source, checkpoint, batches)


def _run_query(
    spark: SparkSession,
    pipeline: Pipeline,
    source: KafkaSource,
    checkpoint: str,
    starting: str | None,
    write_batch: Callable[[DataFrame, int], None],
) -> None:
    """The streaming query, restarted after SPARK-55271; its errors as clear JobErrors."""
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        query = (
            spark.readStream.format("kafka")
            .options(**spark_source_options(pipeline.cfg, source, starting))
            .load()
            .writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .queryName(f"ingest_kafka_{pipeline.name}_{source.name}")
            .start()
        )
        try:
            query.awaitTermination()
            return
        except StreamingQueryException as e:
            if _is_spark_55271(e) and attempt < _MAX_ATTEMPTS:
                log.warning(
                    "Spark 4.1.1 Kafka source failed reporting metrics after a replayed "
                    "batch (SPARK-55271; the batch itself was committed): restarting "
                    "the query (attempt %d)",
                    attempt + 1,
                )
                continue
            raise _data_loss_error(source, e) or _broker_error(pipeline, source, e) or e from None


def _record(
    rec: runlog.RunRecord, source: KafkaSource, checkpoint: str, batches: list[dict[str, Any]]
) -> None:
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
    from lakeloop.kafka_io import missing_topic_message

    if not pipeline.spec.sources.kafka:
        raise JobError(f"pipeline {pipeline.name} declares no Kafka sources")
    with runlog.recording(spark, pipeline, JOB, date) as rec:
        # Every topic is checked before any lock, checkpoint or query: Spark's consumer would
        # wait for a missing topic (or have a broker auto-create it) instead of failing.
        partitions: dict[str, list[int]] = {}
        for source in pipeline.spec.sources.kafka:
            try:
                partitions[source.name] = topic_partitions(pipeline.cfg, source)
            except (ConnectionError, TopicError) as e:
                raise JobError(f"source {source.name}: {e}; nothing was written") from None
            if not partitions[source.name]:
                raise JobError(f"{missing_topic_message(pipeline, source)}; nothing was written")
        for source in pipeline.spec.sources.kafka:
            with source_lock(spark, pipeline.checkpoint(source), source, rec.run_id):
                ingest_source(spark, pipeline, source, date, rec, partitions[source.name])
    return rec


def main(argv: list[str] | None = None) -> int:
    return main_for(JOB, run, argv)
