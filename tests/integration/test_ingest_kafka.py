"""ingest_kafka against the real local broker: exactly once across crashes and re-runs."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io, runlog
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_kafka
from lakeloop.jobs.common import JobError
from lakeloop.kafka_io import python_client_config
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT

pytestmark = pytest.mark.kafka
D = dt.date(2026, 1, 1)


def _produce(pipeline, days=1, rows=400, malformed=0.03, start=D):
    total = {"sales": 0, "bad_messages": 0}
    for n in range(days):
        counts, msgs = gen.generate_day(pipeline, start + dt.timedelta(days=n), rows, malformed)
        gen.produce_sales(pipeline, msgs)
        total["sales"] += counts["sales"]
        total["bad_messages"] += counts["bad_messages"]
    return total


def _ledger(pipeline) -> int:
    """Messages in the topic per Kafka's own offsets: sum(end - beginning) over partitions."""
    source = pipeline.spec.sources.kafka[0]
    consumer = KafkaConsumer(**python_client_config(pipeline.cfg, source))
    try:
        parts = [
            TopicPartition(source.topic, p) for p in consumer.partitions_for_topic(source.topic)
        ]
        end, begin = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
        return sum(end[p] - begin[p] for p in parts)
    finally:
        consumer.close()


def _ingested(spark, pipeline):
    cols = ["_topic", "_partition", "_offset"]
    frames = [
        delta_io.read(spark, pipeline.table_path(k)).select(*cols)
        for k in ("bronze_sales", "dead_letter")
        if delta_io.version(spark, pipeline.table_path(k)) is not None
    ]
    df = frames[0].unionByName(frames[1]) if len(frames) == 2 else frames[0]
    return df.count(), df.distinct().count()


def test_topic_to_bronze_and_dead_letters_exactly(spark, kafka_houses):
    pipeline, _ = kafka_houses
    made = _produce(pipeline)
    rec = ingest_kafka.run(spark, pipeline, D)
    bronze = delta_io.read(spark, pipeline.table_path("bronze_sales"))
    dead = delta_io.read(spark, pipeline.table_path("dead_letter"))
    assert bronze.count() + dead.count() == made["sales"] == _ledger(pipeline)
    assert dead.count() == made["bad_messages"] > 0
    assert dead.where("_error is null or _error = '' or _value is null").count() == 0
    assert bronze.where("sale_id is null or sale_price is null").count() == 0
    assert set(bronze.columns) >= {"_topic", "_partition", "_offset", "_kafka_timestamp"}
    assert int(rec.details["sales.batches"]) >= 2  # max_offsets_per_trigger splits the backlog
    assert sum(o["end_offset"] - o["start_offset"] for o in rec.kafka_offsets) == made["sales"]
    # a re-run with nothing new writes nothing
    rec2 = ingest_kafka.run(spark, pipeline, D)
    assert rec2.input_counts["sales.messages"] == 0 and rec2.delta_versions == {}
    assert _ingested(spark, pipeline) == (made["sales"], made["sales"])
    log = runlog.runs(spark, pipeline).where("job = 'ingest_kafka'")
    first = log.orderBy("started_at").first()
    assert (
        first["output_counts"]["bronze_sales"] + first["output_counts"]["dead_letter"]
        == made["sales"]
    )
    assert {o["partition"] for o in first["kafka_offsets"]} == {0, 1}


def test_deleted_newest_checkpoint_commit_is_not_written_twice(spark, kafka_houses):
    pipeline, _ = kafka_houses
    made = _produce(pipeline)
    ingest_kafka.run(spark, pipeline, D)
    commits = Path(pipeline.checkpoint(pipeline.spec.sources.kafka[0])) / "commits"
    newest = max((p for p in commits.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    newest.unlink()
    (commits / f".{newest.name}.crc").unlink(missing_ok=True)
    rec = ingest_kafka.run(spark, pipeline, D)  # replays batch N from offsets/N
    assert rec.details["sales.replayed_batches"] == "1"
    assert rec.output_counts.get("bronze_sales", 0) == 0
    assert _ingested(spark, pipeline) == (made["sales"], made["sales"])


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(spark, kafka_houses, tmp_path):
    pipeline, spec_path = kafka_houses
    made = _produce(pipeline, days=4, rows=500, malformed=0.01)
    proc = _ingest_process(pipeline, spec_path, tmp_path / "killed-run.log")
    _wait_for_commits(proc, pipeline, 2)  # at least two batches committed
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, mid-run
    proc.wait()
    partial = _ingested(spark, pipeline)
    assert 0 < partial[0] < made["sales"]
    ingest_kafka.run(spark, pipeline, D)
    total, distinct = _ingested(spark, pipeline)
    assert total == distinct == made["sales"] == _ledger(pipeline)


def test_lost_checkpoint_folder_resumes_after_the_tables_offsets(spark, kafka_houses):
    pipeline, _ = kafka_houses
    made = _produce(pipeline, rows=300)
    ingest_kafka.run(spark, pipeline, D)
    source = pipeline.spec.sources.kafka[0]
    shutil.rmtree(pipeline.checkpoint(source))  # the whole checkpoint, query id and all
    more = _produce(pipeline, rows=200, start=D + dt.timedelta(days=1))
    rec = ingest_kafka.run(spark, pipeline, D + dt.timedelta(days=1))
    resumed = json.loads(rec.details["sales.resumed_from_tables"])[source.topic]
    assert set(resumed) == {"0", "1"} and all(v > 0 for v in resumed.values())
    assert rec.input_counts["sales.messages"] == more["sales"]  # only the new messages
    total, distinct = _ingested(spark, pipeline)
    assert total == distinct == made["sales"] + more["sales"] == _ledger(pipeline)


def _ingest_process(pipeline, spec_path, log_path):
    cmd = [sys.executable, "-m", "lakeloop.cli", "run", "ingest_kafka"]
    cmd += ["--pipeline", str(spec_path), "--date", D.isoformat(), "--env", "test"]
    cmd += ["--set", f"lakehouse_root={pipeline.root}"]
    env = {**os.environ, "LAKELOOP_HOME": str(ROOT)}
    out = open(log_path, "wb")
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for_commits(proc, pipeline, n, seconds=240):
    delta_log = Path(pipeline.table_path("bronze_sales")) / "_delta_log"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(delta_log.glob("*.json"))) >= n:
            return
        time.sleep(0.2)
    assert proc.poll() is None, "the job ended too early; make the backlog bigger"


def test_concurrent_run_is_refused_and_a_broker_outage_fails_clearly(
    spark, kafka_houses, broker, tmp_path
):
    """One ingest runs in another process. A second run of the source at the same time fails
    fast on the lock. Then the broker stops mid-run: that run fails within the source's
    broker_timeout_s with a clear message; with the broker back, a re-run is exact."""
    from lakeloop import kafka_broker

    pipeline, spec_path = kafka_houses
    spec = yaml.safe_load(spec_path.read_text())
    spec["sources"]["kafka"][0]["broker_timeout_s"] = 10  # the outage's wait, kept short
    spec_path.write_text(yaml.safe_dump(spec))
    made = _produce(pipeline, days=4, rows=500, malformed=0.01)
    proc = _ingest_process(pipeline, spec_path, tmp_path / "first.log")
    try:
        _wait_for_commits(proc, pipeline, 2)
        t0 = time.monotonic()
        with pytest.raises(JobError, match="source sales is already being ingested: run"):
            ingest_kafka.run(spark, pipeline, D)
        assert time.monotonic() - t0 < 60  # refused before any query starts
        kafka_broker.down(broker)
        t_down = time.monotonic()
        code = proc.wait(timeout=300)
        waited = time.monotonic() - t_down
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        kafka_broker.up(broker)
    log = (tmp_path / "first.log").read_text()
    assert code == 1, log[-3000:]
    assert "did not answer within 10s" in log and "Traceback" not in log, log[-3000:]
    assert waited < 120, waited  # bounded by broker_timeout_s (x3 offset fetches), not a hang
    partial = _ingested(spark, pipeline)
    assert 0 < partial[0] < made["sales"] and partial[0] == partial[1]
    runs = delta_io.read(spark, pipeline.table_path("run_log")).where("job = 'ingest_kafka'")
    failed = runs.where("status = 'failed'").collect()
    assert len(failed) == 2  # the refused run and the one the outage stopped
    outage = next(r for r in failed if "did not answer" in r.error)
    # the failed run's row counts the batches it committed before the broker stopped
    written = outage.output_counts["bronze_sales"] + outage.output_counts["dead_letter"]
    assert written == partial[0]
    # the re-run in bigger micro-batches (2 instead of ~18: batch size is not what exactly-once
    # depends on; the same checkpoint and ledger carry on)
    spec["sources"]["kafka"][0]["max_offsets_per_trigger"] = 1000
    spec_path.write_text(yaml.safe_dump(spec))
    ingest_kafka.run(spark, load_pipeline(pipeline.cfg, str(spec_path)), D)
    total, distinct = _ingested(spark, pipeline)
    assert total == distinct == made["sales"] == _ledger(pipeline)


def test_data_lost_to_retention_fails_loudly(spark, kafka_houses):
    pipeline, _ = kafka_houses
    _produce(pipeline, rows=100, malformed=0.0)
    ingest_kafka.run(spark, pipeline, D)
    bronze_before = _ingested(spark, pipeline)
    _produce(pipeline, rows=100, malformed=0.0, start=D + dt.timedelta(days=1))
    source = pipeline.spec.sources.kafka[0]
    admin = KafkaAdminClient(**python_client_config(pipeline.cfg, source))
    consumer = KafkaConsumer(**python_client_config(pipeline.cfg, source))
    parts = [TopicPartition(source.topic, p) for p in consumer.partitions_for_topic(source.topic)]
    ends = consumer.end_offsets(parts)
    consumer.close()
    try:  # what retention does: the oldest un-ingested records disappear
        admin.delete_records({p: ends[p] for p in parts})
    finally:
        admin.close()
    _produce(pipeline, rows=50, malformed=0.0, start=D + dt.timedelta(days=2))
    with pytest.raises(JobError, match="Kafka data loss on topic .*fail_on_data_loss: false"):
        ingest_kafka.run(spark, pipeline, D)
    assert _ingested(spark, pipeline) == bronze_before
    failed = delta_io.read(spark, pipeline.table_path("run_log")).where("status = 'failed'")
    assert failed.where(F.col("error").contains("data loss")).count() == 1


def test_second_broker_up_is_harmless(broker):
    from lakeloop import kafka_broker

    before = kafka_broker.status(broker)
    after = kafka_broker.up(broker)
    assert after["pid"] == before["pid"] and after["answers"]


def test_epoch_millis_and_event_dates_in_the_pipeline_zone_on_an_older_table(
    spark, kafka_houses, cfg
):
    """sold_at as epoch milliseconds (unit ms) in a New York pipeline: a sale at 02:30 UTC has
    the previous day as its event date; milliseconds sent as microseconds go to the dead
    letters. The bronze and dead-letter tables exist already without `_event_date` (written
    by an older lakeloop): the appends still fit, and their old rows hold null there."""
    from lakeloop.schemas import DEAD_LETTER, KAFKA_LINEAGE, struct_of
    from lakeloop.spec import load_pipeline

    _, spec_path = kafka_houses
    spec = yaml.safe_load(spec_path.read_text())
    spec["timezone"] = "America/New_York"
    spec["sources"]["kafka"][0]["value_schema"][4]["unit"] = "ms"  # sold_at
    spec_path.write_text(yaml.safe_dump(spec))
    pipeline = load_pipeline(cfg, str(spec_path))
    source = pipeline.spec.sources.kafka[0]

    old_lineage = [f for f in KAFKA_LINEAGE.fields if f.name != "_event_date"]
    lineage = ("old.topic", 0, 0, None, None, 0, D)
    bronze_schema = T.StructType([*struct_of(source.value_schema).fields, *old_lineage])
    old_sale = ("S0", "L0", "98101", 1.0, dt.datetime(2025, 12, 1), *lineage)
    spark.createDataFrame([old_sale], bronze_schema).write.format("delta").save(
        pipeline.table_path("bronze_sales")
    )
    dl_schema = T.StructType([f for f in DEAD_LETTER.fields if f.name != "_event_date"])
    spark.createDataFrame([(*lineage, "x", b"x", "old")], dl_schema).write.format("delta").save(
        pipeline.table_path("dead_letter")
    )

    at = 1767580200000  # 2026-01-05T02:30:00Z = 2026-01-04 21:30 in New York
    sale = {"listing_id": "L1", "zipcode": "98101", "sale_price": 250000.0}
    gen.produce_sales(
        pipeline,
        [
            (b"S1", json.dumps({"sale_id": "S1", **sale, "sold_at": at}).encode()),
            (b"S2", json.dumps({"sale_id": "S2", **sale, "sold_at": at * 1000}).encode()),
        ],
    )
    run_date = dt.date(2026, 1, 5)
    rec = ingest_kafka.run(spark, pipeline, run_date)
    assert rec.output_counts["bronze_sales"] == 1 and rec.output_counts["dead_letter"] == 1

    bronze = delta_io.read(spark, pipeline.table_path("bronze_sales"))
    got = bronze.select(
        "sale_id",
        F.date_format("sold_at", "yyyy-MM-dd HH:mm:ss").alias("sold_at_utc"),
        "_ingest_date",
        "_event_date",
    )
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [
                ("S0", "2025-12-01 00:00:00", D, None),  # the older row: no event date
                ("S1", "2026-01-05 02:30:00", run_date, dt.date(2026, 1, 4)),
            ],
            got.schema,
        ),
    )
    dead = delta_io.read(spark, pipeline.table_path("dead_letter")).where("_error != 'old'")
    row = dead.collect()
    assert len(row) == 1 and row[0]["_event_date"] is None and row[0]["_key"] == "S2"
    assert row[0]["_error"] == (
        "column sold_at: '1767580200000000' read as milliseconds since 1970-01-01 is outside "
        "1970-01-01 .. 2200-01-01 (is the unit right? Else set the column's min/max)"
    )
