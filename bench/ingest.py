"""make bench-ingest: lakeloop's ingest jobs against bare baselines doing the same work.

1. files -> bronze: `ingest_files.run` (explicit schema, lineage, malformed-record capture,
   Delta replaceWhere with observed counts, run log) vs a bare Spark Parquet write of the same
   CSV + JSON-lines files (same explicit schema, multiLine CSV, union, overwrite). The files
   carry `--malformed` (1%) malformed records and as many quoted newlines, so lakeloop's
   capture of bad records is in the timing.                            ratio `files_vs_parquet`
   A third side, ingest_files' bronze transform written as plain Parquet (no Delta, no run
   log), splits ours' time in two: the checks and lineage, and Delta plus the job around it.
   A fourth, the floor, writes the baseline's rows as ours must write a day (a Delta table
   partitioned by the date, the date replaced): the best ratio any such design can reach.
2. Kafka -> bronze (well-formed messages): `ingest_kafka.run` (AvailableNow stream -> Delta,
   exactly once, dead letters, run log) against
     - a bare Spark batch read of the same topic (`spark.read.format("kafka")`, same bootstrap
       and subscribe, startingOffsets earliest, endingOffsets latest), the same `from_json` with
       the same value schema, appended to a fresh Delta table:   ratio `kafka_vs_spark_batch`
     - a kafka-python consume loop of the same messages (+ json.loads of each value), for
       reference (not Spark, writes nothing):                    ratio `kafka_vs_kafka_python`

Each ratio is baseline seconds / our seconds for the same rows (higher is better); each is
printed as one line `ratio <name> <value>`. Both sides run in one Spark session, after two
warm-up runs of each on small data; timed runs alternate (ours first, then baseline first) and
the best of `--repeats` counts. Scratch data lives in a fresh folder under .bench/ (removed at
the end unless --keep). The machine is small (2 cores): anything else running skews the
numbers, so the CPU used by other processes during the timed runs is reported alongside.

    .venv/bin/python bench/ingest.py [--rows N] [--kafka-rows M] [--malformed F] [--skip-files]
                                     [--skip-kafka] [--no-diagnostics]
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import timing
from cpu_watch import CpuWatch
from timing import BenchError, Side, alternate, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
DAY = dt.date(2026, 1, 1)  # the date the timed file runs ingest
WARM_DAY = dt.date(2025, 6, 1)  # warm-up data
GOALS = {"files_vs_parquet": 0.8, "kafka_vs_spark_batch": 0.8}  # kafka_vs_kafka_python: a reference
DEFAULT_ROWS = 1_000_000
MALFORMED = 0.01  # share of malformed file records (and of quoted newlines) the generator writes
SALES_PER_LISTING = 0.6  # the generator's share of listings that sell (one event each)


def _secs(ts: list[float]) -> str:
    return ", ".join(f"{t:.2f}s" for t in ts)


# --- timing ----------------------------------------------------------------------------------


class Phases:
    """Wall time spent inside named lakeloop functions during our runs (wrappers installed on
    the module attributes the jobs call; nothing in src/ changes)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, module: object, attr: str, label: str) -> None:
        orig = getattr(module, attr)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                self.current[label] = self.current.get(label, 0.0) + time.perf_counter() - t

        setattr(module, attr, timed)
        self._undo.append(lambda: setattr(module, attr, orig))

    def take(self) -> dict[str, float]:
        out, self.current = self.current, {}
        return out

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


# --- data ------------------------------------------------------------------------------------


def well_formed(message: tuple[bytes, bytes]) -> bool:
    """A sale event the generator did not break (JSON with a numeric sale_price)."""
    try:
        value = json.loads(message[1])
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("sale_price"), int | float)


def generate_files(
    pipeline, day: dt.date, rows: int, parts: int, malformed: float, seed: int = 7
) -> tuple[list, int]:
    """`rows` listings for `day` as `parts` CSV files + `parts` JSON-lines files (70/30 rows,
    one generate_day call per part, each on its own generator date so listing ids are unique,
    moved into `day`'s folder), a `malformed` share of them malformed. Returns the well-formed
    sale events of all parts (key, value) and how many malformed records the files hold."""
    from lakeloop.generate.houses import generate_day

    messages: list = []
    bad = 0
    sources = pipeline.spec.sources.files
    for i in range(parts):
        n = rows // parts + (1 if i < rows % parts else 0)
        if n == 0:
            continue
        gen_day = day + dt.timedelta(days=1000 + i)
        counts, msgs = generate_day(pipeline, gen_day, n, malformed=malformed, seed=seed)
        if counts["listings"] != n:
            raise BenchError(f"generator wrote {counts['listings']} listings, expected {n}")
        bad += counts["malformed_csv"] + counts["malformed_json"]
        messages.extend(m for m in msgs if well_formed(m))
        for s in sources:
            src_glob = pipeline.file_glob(s, gen_day)
            dest = Path(pipeline.file_glob(s, day)).parent
            dest.mkdir(parents=True, exist_ok=True)
            for f in glob.glob(src_glob):
                p = Path(f)
                p.rename(dest / f"part-{i:03d}{p.suffix}")
            folder = Path(src_glob).parent
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return messages, bad


def more_messages(pipeline, have: list, want: int, seed: int = 7) -> list:
    """Top `have` up to `want` sale events (files generated on the way are deleted)."""
    from lakeloop.generate.houses import generate_day

    msgs = list(have)
    n = 0
    while len(msgs) < want:
        gen_day = DAY + dt.timedelta(days=5000 + n)
        rows = max(1000, min(250_000, int((want - len(msgs)) / SALES_PER_LISTING) + 1000))
        _, extra = generate_day(pipeline, gen_day, rows, malformed=0.0, seed=seed)
        msgs.extend(extra)
        for s in pipeline.spec.sources.files:
            shutil.rmtree(Path(pipeline.file_glob(s, gen_day)).parent, ignore_errors=True)
        n += 1
    return msgs[:want]


def kafka_variant(pipeline, topic: str, tag: str):
    """The pipeline reading `topic` with its own checkpoint and bronze/dead-letter tables."""
    from lakeloop.spec import Pipeline, PipelineSpec

    data = pipeline.spec.model_dump(by_alias=True)
    k = data["sources"]["kafka"][0]
    k["topic"] = topic
    k["checkpoint"] = f"_checkpoints/bench/{tag}"
    data["tables"]["bronze_sales"] = f"bronze.bench_sales_{tag}"
    data["tables"]["dead_letter"] = f"bronze.bench_dead_{tag}"
    return Pipeline(pipeline.cfg, PipelineSpec.model_validate(data))


# --- files -> bronze -------------------------------------------------------------------------


def bench_files(spark, pipeline, args, bench_dir: Path, phases: Phases, notes: list[str]):
    from pyspark.sql import functions as F

    from lakeloop.jobs import ingest_files
    from lakeloop.schemas import struct_of

    sources = {s.format: s for s in pipeline.spec.sources.files}
    if set(sources) != {"csv", "json"}:
        raise BenchError(f"expected one csv and one json file source, got {sorted(sources)}")
    schema = struct_of(sources["csv"].columns)
    out_root = bench_dir / "parquet"

    def files(day: dt.date, fmt: str) -> list[str]:
        return sorted(glob.glob(pipeline.file_glob(sources[fmt], day)))

    def ours(day: dt.date, rows: int, malformed: int) -> None:
        rec = ingest_files.run(spark, pipeline, day)
        got = rec.output_counts.get("bronze_listings")
        bad = sum(v for k, v in rec.output_counts.items() if k.endswith(".malformed"))
        if got != rows or bad != malformed:
            raise BenchError(
                f"ingest_files wrote {got} rows ({bad} malformed), expected {rows} "
                f"({malformed} malformed)"
            )

    def transform_only(day: dt.date, out: Path) -> None:
        """ingest_files' bronze rows (every check, reason and lineage column) for the day,
        written as plain Parquet: no Delta, no run log, no job around it."""
        with ingest_files.one_partition_per_file(spark):
            frames = [
                ingest_files.read_source(spark, s, files(day, s.format), day)
                for s in sources.values()
            ]
            frames[0].unionByName(frames[1]).write.mode("overwrite").parquet(str(out))

    def bare_rows(day: dt.date):
        # multiLine as ours: quoted newlines in a CSV field stay in one record
        csv = (
            spark.read.schema(schema)
            .option("header", True)
            .option("multiLine", True)
            .csv(files(day, "csv"))
        )
        js = spark.read.schema(schema).json(files(day, "json"))
        return csv.unionByName(js)

    def baseline(day: dt.date, out: Path) -> None:
        bare_rows(day).write.mode("overwrite").parquet(str(out))

    floor_path = str(out_root / "floor")

    def floor(day: dt.date) -> None:
        """The bare rows written as ours must write a day: into a Delta table partitioned by the
        date, replacing that date (idempotent), with ours' table properties (no statistics)."""
        timing.replace_day(
            bare_rows(day), floor_path, "_ingest_date", day, ingest_files.BRONZE_PROPERTIES
        )

    say(
        f"files: generating {args.warmup_rows:,} warm-up rows and {args.rows:,} rows "
        f"({args.malformed:.1%} malformed) ..."
    )
    t = time.perf_counter()
    _, warm_bad = generate_files(
        pipeline, WARM_DAY, args.warmup_rows, args.files_per_format, args.malformed
    )
    messages, bad = generate_files(pipeline, DAY, args.rows, args.files_per_format, args.malformed)
    size = sum(os.path.getsize(f) for fmt in ("csv", "json") for f in files(DAY, fmt))
    say(
        f"files: {len(files(DAY, 'csv'))} CSV + {len(files(DAY, 'json'))} JSON files, "
        f"{size / 1e6:.0f} MB, {bad:,} malformed records, generated in "
        f"{time.perf_counter() - t:.1f}s"
    )

    say("files: warm-up (two small runs of each side)")
    warm_ours, warm_base = [], []
    for i in range(2):
        t = time.perf_counter()
        ours(WARM_DAY, args.warmup_rows, warm_bad)
        warm_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        baseline(WARM_DAY, out_root / f"warm{i}")
        warm_base.append(time.perf_counter() - t)
        if not args.no_diagnostics:
            floor(WARM_DAY)
    phases.take()
    say(
        f"files: warm-up {args.warmup_rows:,} rows: ours {_secs(warm_ours)}, "
        f"parquet {_secs(warm_base)}"
    )

    ours_side = Side("files  ours: ingest_files -> Delta", args.rows, cpu_of_best_run=True)
    base_side = Side("files  baseline: spark csv+json -> parquet", args.rows, cpu_of_best_run=True)

    def run_ours(rep: int) -> None:
        ours(DAY, args.rows, bad)
        ours_side.phases.append(phases.take())

    def run_base(rep: int) -> None:
        baseline(DAY, out_root / f"run{rep}")

    runs = [(ours_side, run_ours), (base_side, run_base)]
    if not args.no_diagnostics:
        diag_side = Side(
            "files  diag: bronze transform -> parquet", args.rows, cpu_of_best_run=True
        )
        runs.append((diag_side, lambda rep: transform_only(DAY, out_root / f"diag{rep}")))
        floor_side = Side(
            "files  floor: csv+json -> Delta replaceWhere", args.rows, cpu_of_best_run=True
        )
        runs.append((floor_side, lambda rep: floor(DAY)))
    with CpuWatch("the timed file runs", notes, say):
        alternate(args.repeats, runs, phases=False)
    # the baseline read every record, as ours did, and parsed all but the malformed ones
    # (checked outside the timings)
    out = spark.read.parquet(str(out_root / "run0"))
    n, nulls = out.count(), out.where("listed_at is null or listing_id is null").count()
    if n != args.rows or nulls > bad:
        raise BenchError(
            f"parquet baseline wrote {n} rows ({nulls} unparsed), expected {args.rows} "
            f"(at most {bad} unparsed)"
        )
    say(f"files: parquet baseline: {n:,} rows, {nulls:,} without listing_id or listed_at")
    if not args.no_diagnostics:
        diag = spark.read.parquet(str(out_root / "diag0"))
        d = diag.agg(F.count(F.lit(1)).alias("n"), F.count("_error").alias("bad")).first()
        if (d["n"], d["bad"]) != (args.rows, bad):
            raise BenchError(
                f"the diag side wrote {d['n']} rows ({d['bad']} malformed), expected {args.rows} "
                f"({bad} malformed)"
            )
        fl = spark.read.format("delta").load(floor_path).where(F.col("_ingest_date") == DAY).count()
        if fl != args.rows:
            raise BenchError(f"the floor side's day holds {fl} rows, expected {args.rows}")
        notes.append(
            f"files, where ours' time goes (best runs): the checks, reasons and lineage columns "
            f"(diag - parquet) {diag_side.best - base_side.best:+.2f}s; Delta's replaceWhere, "
            f"the run log and the job around it (ours - diag) {ours_side.best - diag_side.best:+.2f}s"
        )
        notes.append(
            "files_vs_parquet "
            + timing.floor_text(
                base_side.best,
                floor_side,
                GOALS["files_vs_parquet"],
                "the baseline's rows written to Delta, replacing the day",
                "out of reach for any write that replaces the day in Delta",
            )
        )
    shutil.rmtree(out_root, ignore_errors=True)
    notes.append(
        f"files: {bad:,} of {args.rows:,} records malformed ({args.malformed:.1%} rate; ours "
        f"captured each with its reason, the parquet baseline nulls what it cannot parse)"
    )
    sides = [side for side, _ in runs]  # ours, the baseline[, diag, floor]
    return sides, messages, (warm_ours[-1], warm_base[-1])


# --- Kafka -> bronze -------------------------------------------------------------------------


def consume(cfg, source, topic: str, n: int, timeout_s: float) -> float:
    """kafka-python: consume `n` messages of `topic` from the start, json.loads each value.
    Seconds from consumer creation to the last message."""
    from kafka import KafkaConsumer

    from lakeloop.kafka_io import python_client_config

    t = time.perf_counter()
    consumer = KafkaConsumer(
        topic,
        **python_client_config(cfg, source),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    got = 0
    try:
        for msg in consumer:
            json.loads(msg.value)
            got += 1
            if got == n:
                break
        elapsed = time.perf_counter() - t
    finally:
        consumer.close()
    if got != n:
        raise BenchError(
            f"kafka-python consumed {got} of {n} messages of {topic} "
            f"(nothing new for {timeout_s:.0f}s)"
        )
    return elapsed


def bench_kafka(spark, pipeline, args, messages: list, phases: Phases, notes: list[str]):
    from lakeloop import kafka_broker

    cfg = pipeline.cfg
    say(f"kafka: starting the broker if needed ({cfg.kafka.bootstrap_servers})")
    try:
        was_up = bool(kafka_broker.status(cfg)["answers"])
        state = kafka_broker.up(cfg)
    except Exception as e:  # BrokerError, missing jars, port taken, ...
        raise BenchError(f"the Kafka broker could not start: {e}") from e
    if not state.get("answers"):
        raise BenchError(f"the Kafka broker does not answer: {state}")
    say(f"kafka: broker pid {state.get('pid')} {'was up' if was_up else 'started'}")
    try:
        broker = (int(state["pid"]),) if state.get("pid") else ()
        run = uuid.uuid4().hex[:10]
        topics = (f"bench.sales.{run}", f"bench.sales.{run}.warm")
        try:
            return _bench_kafka(spark, pipeline, args, messages, phases, notes, broker, topics)
        finally:
            if not args.keep:
                delete_topics(cfg, topics)
    finally:
        if not was_up:
            say("kafka: stopping the broker this bench started")
            kafka_broker.down(cfg)


def delete_topics(cfg, topics: tuple[str, ...]) -> None:
    """Drop the bench's topics (their data would stay in the broker's data dir)."""
    from kafka import KafkaAdminClient

    from lakeloop.kafka_io import python_client_config

    try:
        admin = KafkaAdminClient(**python_client_config(cfg))
        try:
            gone = [t for t in topics if t in admin.list_topics()]
            if gone:
                admin.delete_topics(gone)
        finally:
            admin.close()
    except Exception as e:  # cleanup only: say so, keep the results
        say(f"kafka: could not delete the bench topics {topics}: {e}")


def _bench_kafka(
    spark,
    pipeline,
    args,
    messages: list,
    phases: Phases,
    notes: list[str],
    broker: tuple,
    topics: tuple[str, str],
):
    from pyspark.sql import functions as F

    from lakeloop.generate.houses import produce_sales
    from lakeloop.jobs import ingest_kafka
    from lakeloop.kafka_io import spark_source_options
    from lakeloop.schemas import struct_of

    cfg = pipeline.cfg

    n = args.kafka_rows
    t = time.perf_counter()
    msgs = more_messages(pipeline, messages, n)
    warm_msgs = msgs[: args.warmup_rows // 2 or 1]
    topic, warm_topic = topics
    say(f"kafka: {n:,} messages ready in {time.perf_counter() - t:.1f}s; producing to {topic}")
    t = time.perf_counter()
    produce_sales(kafka_variant(pipeline, warm_topic, "warm"), warm_msgs)
    produce_sales(kafka_variant(pipeline, topic, "setup"), msgs)
    say(f"kafka: produced {n:,} messages in {time.perf_counter() - t:.1f}s")
    source = pipeline.spec.sources.kafka[0]

    def ours(tag: str, topic_: str, count: int) -> None:
        p = kafka_variant(pipeline, topic_, tag)
        rec = ingest_kafka.run(spark, p, DAY)
        seen = rec.input_counts.get(f"{source.name}.messages")
        wrote = rec.output_counts.get("bronze_sales")
        if seen != count or wrote != count:
            raise BenchError(
                f"ingest_kafka ({tag}) read {seen} and wrote {wrote} messages, expected {count}"
            )

    schema = struct_of(source.value_schema)  # what ingest_kafka parses the values with
    batch_root = Path(cfg.lakehouse_root) / "bench_spark_batch"

    def spark_batch(topic_: str, out: str) -> None:
        """The bare Spark baseline: one batch read of the whole topic, the same from_json,
        the value fields + the Kafka columns appended to a Delta table."""
        opts = spark_source_options(cfg, source.model_copy(update={"topic": topic_}))
        opts.pop("maxOffsetsPerTrigger", None)  # a streaming option
        opts |= {"startingOffsets": "earliest", "endingOffsets": "latest"}
        (
            spark.read.format("kafka")
            .options(**opts)
            .load()
            .select(
                F.from_json(F.col("value").cast("string"), schema).alias("v"),
                "topic",
                "partition",
                "offset",
                "timestamp",
                F.col("key").cast("string").alias("key"),
            )
            .select("v.*", "topic", "partition", "offset", "timestamp", "key")
            .write.format("delta")
            .mode("append")
            .save(out)
        )

    say("kafka: warm-up (two small runs of each side)")
    warm_ours, warm_batch, warm_base = [], [], []
    for i in range(2):
        t = time.perf_counter()
        ours(f"warm{i}", warm_topic, len(warm_msgs))
        warm_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        spark_batch(warm_topic, str(batch_root / f"warm{i}"))
        warm_batch.append(time.perf_counter() - t)
        warm_base.append(consume(cfg, source, warm_topic, len(warm_msgs), args.consumer_timeout))
    phases.take()
    say(
        f"kafka: warm-up {len(warm_msgs):,} messages: ours {_secs(warm_ours)}, "
        f"spark batch {_secs(warm_batch)}, kafka-python {_secs(warm_base)}"
    )

    ours_side = Side("kafka  ours: ingest_kafka -> Delta", n, cpu_of_best_run=True)
    batch_side = Side("kafka  baseline: spark batch read -> Delta", n, cpu_of_best_run=True)
    base_side = Side("kafka  reference: kafka-python + json.loads", n, cpu_of_best_run=True)

    def run_ours(rep: int) -> None:
        ours(f"run{rep}", topic, n)  # a fresh checkpoint and tables: reads every message
        ours_side.phases.append(phases.take())

    def run_batch(rep: int) -> None:
        spark_batch(topic, str(batch_root / f"run{rep}"))  # a fresh table, as ours

    def run_base(rep: int) -> None:
        consume(cfg, source, topic, n, args.consumer_timeout)

    runs = [(ours_side, run_ours), (batch_side, run_batch), (base_side, run_base)]
    with CpuWatch("the timed Kafka runs", notes, say, also=broker):
        alternate(args.repeats, runs, also=broker, phases=False)
    # the batch baseline wrote every message, parsed (checked outside the timings)
    out = spark.read.format("delta").load(str(batch_root / "run0"))
    got = out.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(F.col("sale_id").isNull() | F.col("sale_price").isNull(), 1)).alias("bad"),
    ).first()
    if got["n"] != n or got["bad"]:
        raise BenchError(
            f"spark batch baseline wrote {got['n']} rows ({got['bad']} unparsed), expected {n}"
        )
    say(f"kafka: spark batch baseline wrote {got['n']:,} rows, all parsed")
    shutil.rmtree(batch_root, ignore_errors=True)
    warm = (len(warm_msgs), warm_ours[-1], warm_batch[-1], warm_base[-1])
    return ours_side, batch_side, base_side, warm


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/ingest.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help="listings for files -> bronze (1,000,000)"
    )
    p.add_argument(
        "--kafka-rows",
        type=int,
        default=None,
        help="messages for Kafka -> bronze (default: 0.6 x --rows, about the sale events of "
        "those listings; 600,000 for the default --rows)",
    )
    p.add_argument("--repeats", type=int, default=2, help="timed runs per side (best counts)")
    p.add_argument("--files-per-format", type=int, default=2, help="CSV files and JSON files")
    p.add_argument("--warmup-rows", type=int, default=20_000, help="rows of the warm-up runs")
    p.add_argument(
        "--malformed",
        type=float,
        default=MALFORMED,
        help="share of malformed records in the files (0.01); Kafka gets well-formed messages",
    )
    p.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="only the sides the ratios need (for files: no diag and floor sides)",
    )
    p.add_argument("--skip-files", action="store_true")
    p.add_argument("--skip-kafka", action="store_true")
    p.add_argument(
        "--env",
        default="dev",
        help="config environment: its Spark settings and its Kafka broker (dev: the demo's "
        "broker on 9092; test's broker is shared with test runs that may stop it)",
    )
    p.add_argument("--driver-memory", default=None, help="spark.driver.memory (default: config)")
    p.add_argument("--consumer-timeout", type=float, default=60.0, help="kafka-python idle limit")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    if args.kafka_rows is None:
        args.kafka_rows = max(1, int(args.rows * SALES_PER_LISTING))
    for name in ("rows", "kafka_rows", "repeats", "files_per_format", "warmup_rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= args.malformed < 1.0:
        p.error("--malformed must be in [0, 1)")
    if args.skip_files and args.skip_kafka:
        p.error("nothing to do: --skip-files and --skip-kafka together")
    return args


def report(sides: list[Side], ratios: dict[str, float | None], notes: list[str]) -> None:
    def phases(s: Side) -> list[str]:
        if not s.phases:  # only ours records them
            return []
        label = " ".join(s.name.split(":")[0].split())
        return [f"  {label} best run {s.best:.2f}s, of which inside: {s.phase_text()}"]

    cpu_note = "  (cpu s: CPU seconds of this process and its Spark JVM, plus the broker for kafka)"
    timing.print_report(
        sides,
        ratios,
        GOALS,
        notes,
        cpu_note=cpu_note,
        side_lines=phases,
        median=False,
        jobs_width=None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    # kafka-python warns about its own event loop when the 2 cores are busy (Spark + broker)
    logging.getLogger("kafka").setLevel(logging.ERROR)

    from lakeloop import delta_io, runlog
    from lakeloop.config import load_config
    from lakeloop.spec import load_pipeline

    bench_dir = BENCH_ROOT / f"ingest-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    if bench_dir.exists():
        shutil.rmtree(bench_dir)
    bench_dir.mkdir(parents=True)
    overrides: dict = {"lakehouse_root": str(bench_dir), "spark": {"shuffle_partitions": 2}}
    if args.driver_memory:
        overrides["spark"]["driver_memory"] = args.driver_memory
    cfg = load_config(args.env, overrides, project_root=ROOT)
    pipeline = load_pipeline(cfg, "houses")
    say(
        f"bench dir {bench_dir}; rows {args.rows:,}, kafka rows {args.kafka_rows:,}, "
        f"repeats {args.repeats}, spark {cfg.spark.master} driver memory {cfg.spark.driver_memory}"
    )

    res = timing.Results()
    phases = Phases()
    phases.wrap(delta_io, "replace_partition", "delta write")
    phases.wrap(delta_io, "append_once", "delta append")
    phases.wrap(runlog, "finish", "run-log write")
    phases.wrap(delta_io, "version", "delta version()")  # also inside "delta append"

    messages: list = []
    with timing.spark_session(cfg, "lakeloop-bench-ingest", bench_dir, args.keep) as spark:
        try:
            if not args.skip_files:
                out = res.part(
                    "files",
                    lambda: bench_files(spark, pipeline, args, bench_dir, phases, res.notes),
                    trace_bench_errors=True,
                )
                if out:
                    sides, messages, warm = out
                    ours, base = sides[:2]
                    res.sides += sides
                    res.ratios["files_vs_parquet"] = base.best / ours.best
                    res.notes.append(
                        f"fixed cost, roughly (2nd warm-up run, {args.warmup_rows:,} rows): "
                        f"ingest_files {warm[0]:.2f}s, parquet {warm[1]:.2f}s"
                    )
            if not args.skip_kafka:
                out = res.part(
                    "kafka", lambda: bench_kafka(spark, pipeline, args, messages, phases, res.notes)
                )
                if out:
                    ours, batch, base, warm = out
                    res.sides += [ours, batch, base]
                    res.ratios["kafka_vs_spark_batch"] = batch.best / ours.best
                    res.ratios["kafka_vs_kafka_python"] = base.best / ours.best
                    res.notes.append(
                        f"fixed cost, roughly (2nd warm-up run, {warm[0]:,} messages): "
                        f"ingest_kafka {warm[1]:.2f}s, spark batch {warm[2]:.2f}s, "
                        f"kafka-python {warm[3]:.2f}s"
                    )
        finally:
            phases.restore()

    wanted = [] if args.skip_files else ["files_vs_parquet"]
    wanted += [] if args.skip_kafka else ["kafka_vs_spark_batch", "kafka_vs_kafka_python"]
    return res.finish(wanted, report)


if __name__ == "__main__":
    sys.exit(main())
