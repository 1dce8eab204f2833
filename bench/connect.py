"""bench/connect.py: a lakeloop task's start cost with a Spark JVM of its own (spark-submit, what
every Airflow task pays) against a Spark Connect client of one long-lived server, the session
settings that might shorten the classic start, and what lakeloop uses that works over Connect.

Everything lives in a scratch folder under .bench/ (removed at the end unless --keep): a
lakehouse on the `test` config and a Spark Connect server of the bench's own
(`lakeloop.connect_server` on 127.0.0.1:25002, its pid file and log in the project's
.connect/), started at the beginning and stopped at the end.

1. Per-task start. Each side is one process running a job-like script (written into the
   scratch folder): load the config, `build_spark(cfg)`, append one row to a Delta table of its
   own, stop; timed from process start to exit, with the times its log lines arrived (config
   loaded, session up, row appended). Sides:
   - `classic submit`: `spark-submit --master local[2] --driver-java-options <config's>` (what
     the DAG's tasks run), lakeloop's session settings as they are;
   - `classic submit +<lever>`: the same with one setting changed through spark.extra_conf
     (Delta's snapshotPartitions at Spark's default 50 and at 1; catalogImplementation
     in-memory, i.e. no Hive: the script logs the catalog each side ends up with);
   - `classic in-process`: `python script` (build_spark starts the JVM: `lakeloop run`);
   - `connect client`: `python script` with `spark.remote` = the bench's server.
   One untimed warm-up of each side first; the timed runs alternate in rounds (odd rounds
   reversed); best and median reported. After each run its table must hold one row more
   (read without a JVM, delta-rs).
2. Over Connect, each line tried for real in one client session: Delta by path, replaceWhere,
   the DeltaTable API (forPath/history/merge), DataFrame.observe, foreachBatch on a Kafka
   AvailableNow stream (the test config's broker, started if down and then stopped again),
   pyspark.ml Pipeline fit/transform, GX through lakeloop.quality.gx_runner, a Python UDF on
   the server's workers, `spark.sparkContext` / `_jvm`, `newSession` (session.isolated), and
   lakeloop.storage.read_text. Then the lakeloop modules that use py4j or the DeltaTable API
   (a scan of src/lakeloop), and one real job (`jobs/ingest_files.py`, then `jobs/validate.py`)
   run as a Connect client on a one-listing day: its exit code and its error line.

Printed: `metric task_start_classic_s`, `metric task_start_connect_s` (best runs),
`ratio connect_start_speedup` (classic / connect) and the compatibility table.

    .venv/bin/python bench/connect.py [--runs N] [--skip-levers] [--keep] [--timeout S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import timing
from cpu_watch import _TICK, _procs, _tree
from job_start import submit
from timing import BenchError, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
VENV_BIN = Path(sys.executable).parent
PORT = 25002
URL = f"sc://127.0.0.1:{PORT}"
DAY = dt.date(2026, 1, 1)
LEVERS = {
    "snapshotPartitions=50 (Delta's default)": {"spark.databricks.delta.snapshotPartitions": "50"},
    "snapshotPartitions=1": {"spark.databricks.delta.snapshotPartitions": "1"},
    "catalogImplementation=in-memory": {"spark.sql.catalogImplementation": "in-memory"},
}
MARKS = {
    "config": r" INFO bench\.task: config loaded",
    "session": r" INFO lakeloop\.session: spark \S+ session ",
    "done": r" INFO bench\.task: appended 1 row in (?P<body>[\d.]+)s catalog=(?P<catalog>\S+)",
}
PHASES = ("start", "session", "work", "exit")
# what cannot work over Connect: py4j (the JVM of a classic session) and Delta's Python API
PY4J = re.compile(
    r"\bsparkContext\b|\._jvm\b|\._jsc\b|\._jdf\b|\._jdt\b|_jsparkSession|DeltaTable\.(forPath|"
    r"isDeltaTable|forName)|\.newSession\(\)"
)

FRAME = re.compile(
    r'File ".*/src/(?P<file>lakeloop/[\w/]+\.py)", line (?P<line>\d+), in (?P<fn>\w+)'
)

TASK_SCRIPT = '''"""A task's fixed cost: config, session (classic or Connect), one Delta append, stop."""

import datetime as dt
import json
import logging
import sys
import time

from lakeloop import logs
from lakeloop.config import load_config
from lakeloop.session import build_spark

log = logging.getLogger("bench.task")


def main(argv: list[str]) -> int:
    root, table, run, overrides = argv[0], argv[1], int(argv[2]), json.loads(argv[3])
    logs.configure()
    cfg = load_config("test", {"lakehouse_root": root, **overrides})
    log.info("config loaded")
    spark = build_spark(cfg, app_name="lakeloop-bench-task")
    t = time.monotonic()
    df = spark.createDataFrame([(run, dt.datetime.now(dt.UTC))], "run int, at timestamp")
    df.write.format("delta").mode("append").save(table)
    catalog = spark.conf.get("spark.sql.catalogImplementation")
    log.info("appended 1 row in %.2fs catalog=%s", time.monotonic() - t, catalog)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


# --- per-task start --------------------------------------------------------------------------


@dataclass
class TaskSide:
    name: str
    submit: bool  # spark-submit, else plain python
    overrides: dict
    table: str
    rows: int = 0
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    catalog: str = "?"
    server_pid: int | None = None  # the Connect server: its CPU counts to the side's

    @property
    def cpu_text(self) -> str:
        if not self.submit and self.server_pid is None:
            return "n/a"  # build_spark's JVM is not reaped by Python: its CPU is not seen
        return f"{min(self.cpu):.1f}"

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from lakeloop.config import load_config

        self.args, self.scratch = args, scratch
        self.lake = scratch / "lake"
        self.cfg = load_config(
            "test", {"lakehouse_root": str(self.lake), "spark": {"remote": URL}}, project_root=ROOT
        )
        (scratch / "task.py").write_text(TASK_SCRIPT)
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "LAKELOOP_HOME": str(ROOT),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        for var in ("SPARK_HOME", "PYSPARK_GATEWAY_PORT", "LAKELOOP_LOG_LEVEL", "LAKELOOP_ENV"):
            self.env.pop(var, None)

    def sides(self) -> list[TaskSide]:
        def side(name: str, via_submit: bool, overrides: dict) -> TaskSide:
            table = str(self.lake / "bench" / re.sub(r"\W+", "_", name).strip("_"))
            return TaskSide(name, via_submit, overrides, table)

        out = [side("classic submit", True, {})]
        if not self.args.skip_levers:
            out += [
                side(f"classic submit +{k}", True, {"spark": {"extra_conf": v}})
                for k, v in LEVERS.items()
            ]
            out.append(side("classic in-process", False, {}))
        out.append(side("connect client", False, {"spark": {"remote": URL}}))
        return out

    def command(self, s: TaskSide) -> list[str]:
        script = [str(self.scratch / "task.py"), str(self.lake), s.table, str(s.rows)]
        script.append(json.dumps(s.overrides))
        if not s.submit:
            return [sys.executable, *script]
        java = self.cfg.spark.driver_java_options
        return ["spark-submit", "--master", "local[2]", "--driver-java-options", java, *script]

    def run(self, s: TaskSide, timed: bool) -> None:
        from lakeloop.orchestration.tables import dataset

        server0 = server_cpu(s.server_pid)
        r = submit(self.command(s), self.env, self.scratch, s.name, self.args.timeout)
        r.cpu += server_cpu(s.server_pid) - server0
        if r.rc != 0:
            raise BenchError(f"{s.name}: exited {r.rc}; last lines:\n{r.tail()}")
        stamps = {}
        for key, pattern in MARKS.items():
            hit = r.first(pattern)
            if hit is None:
                raise BenchError(f"{s.name}: no line matching {pattern!r}; last lines:\n{r.tail()}")
            stamps[key] = hit[0]
            if key == "done":
                s.catalog = hit[1]["catalog"]
        n = dataset(s.table).count_rows()
        if n != s.rows + 1:
            raise BenchError(f"{s.name}: its table holds {n} rows, expected {s.rows + 1}")
        s.rows = n
        if timed:
            s.times.append(r.wall)
            s.cpu.append(r.cpu)
            s.phases.append(
                {
                    "start": stamps["config"],
                    "session": stamps["session"] - stamps["config"],
                    "work": stamps["done"] - stamps["session"],
                    "exit": r.wall - stamps["done"],
                }
            )
            say(f"  {s.name}: {r.wall:.2f}s ({r.cpu:.1f} CPU s, others {r.other_cores:.2f} cores)")

    def measure(self, server_pid: int) -> list[TaskSide]:
        sides = self.sides()
        for s in sides:
            if "remote" in s.overrides.get("spark", {}):
                s.server_pid = server_pid
        for s in sides:
            t = time.monotonic()
            self.run(s, timed=False)
            say(f"warm-up {s.name}: {time.monotonic() - t:.1f}s")
        for rep in range(self.args.runs):
            say(f"round {rep + 1}/{self.args.runs}")
            for s in sides if rep % 2 == 0 else list(reversed(sides)):
                self.run(s, timed=True)
        return sides


def server_cpu(pid: int | None) -> float:
    """CPU seconds the server's process tree has used so far (its Python workers included)."""
    if pid is None:
        return 0.0
    procs = _procs(children=True)
    return sum(procs[p][1] for p in _tree(procs, {pid})) / _TICK


def print_sides(sides: list[TaskSide]) -> None:
    print()
    head = " ".join(f"{p:>8}" for p in PHASES)
    print(
        f"{'side (one task: session + 1 Delta append)':<52} {'best s':>7} {'median':>7} "
        f"{'cpu s':>6} {head}  catalog"
    )
    for s in sides:
        best = s.phases[s.times.index(s.best)]
        cells = " ".join(f"{best[p]:8.2f}" for p in PHASES)
        print(f"{s.name:<52} {s.best:7.2f} {s.median:7.2f} {s.cpu_text:>6} {cells}  {s.catalog}")
    print(
        "  (phases of the best run: start = process start -> config loaded (spark-submit's "
        "launcher + JVM + imports); session = build_spark; work = one Delta append; exit = "
        "stop + process exit; cpu s: the least CPU s of the process tree, the Connect server's "
        "included)"
    )


# --- compatibility over Connect --------------------------------------------------------------


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160] if text else ''}"


def attempt(what: str, fn: Callable[[], str], out: list[Check]) -> None:
    t = time.monotonic()
    try:
        detail = fn()
        out.append(Check(what, True, f"{detail} ({time.monotonic() - t:.1f}s)"))
    except Exception as e:
        out.append(Check(what, False, first_line(e)))
        if os.environ.get("BENCH_TRACE"):
            traceback.print_exc()
    say(f"  {'works' if out[-1].ok else 'FAILS'}: {what}: {out[-1].detail}")


def compatibility(cfg, scratch: Path) -> list[Check]:
    """Each line of the table tried in one Connect client session."""
    from lakeloop.session import build_spark

    spark = build_spark(cfg)
    base = scratch / "lake" / "compat"
    out: list[Check] = []
    t1 = str(base / "t1")

    def delta_path() -> str:
        df = spark.createDataFrame([(1, "2026-01-01"), (2, "2026-01-02")], "id int, day string")
        df.write.format("delta").partitionBy("day").mode("overwrite").save(t1)
        return f"{spark.read.format('delta').load(t1).count()} rows read back"

    def replace_where() -> str:
        df = spark.createDataFrame([(3, "2026-01-02"), (4, "2026-01-02")], "id int, day string")
        df.write.format("delta").mode("overwrite").option(
            "replaceWhere", "day = '2026-01-02'"
        ).save(t1)
        ids = sorted(r.id for r in spark.read.format("delta").load(t1).collect())
        if ids != [1, 3, 4]:
            raise AssertionError(f"ids {ids}, expected [1, 3, 4]")
        return "day replaced, the other kept"

    def delta_table_history() -> str:
        from delta.tables import DeltaTable

        h = DeltaTable.forPath(spark, t1).history(1).first()
        return f"last operation {h['operation']}"

    def delta_table_merge() -> str:
        from delta.tables import DeltaTable

        src = spark.createDataFrame([(1, "2026-01-01", 10)], "id int, day string, v int")
        (
            DeltaTable.forPath(spark, t1)
            .alias("t")
            .merge(src.alias("s"), "t.id = s.id")
            .whenMatchedUpdate(set={"id": "s.v"})
            .execute()
        )
        return "merged"

    def is_delta_table() -> str:
        from delta.tables import DeltaTable

        return f"isDeltaTable={DeltaTable.isDeltaTable(spark, t1)}"

    def sql_merge() -> str:
        src = spark.createDataFrame([(4, "2026-01-02")], "id int, day string")
        src.createOrReplaceTempView("merge_src")
        spark.sql(
            f"MERGE INTO delta.`{t1}` t USING merge_src s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET t.id = 40 WHEN NOT MATCHED THEN INSERT *"
        ).collect()
        h = spark.sql(f"DESCRIBE HISTORY delta.`{t1}` LIMIT 1").first()
        return f"MERGE INTO + DESCRIBE HISTORY in SQL: last operation {h['operation']}"

    def observe() -> str:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        obs = Observation("bench")
        df = spark.range(5).observe(obs, F.count(F.lit(1)).alias("n"))
        df.write.format("delta").mode("overwrite").save(str(base / "observed"))
        n = obs.get["n"]
        if n != 5:
            raise AssertionError(f"observed {n}, expected 5")
        return "Observation.get after a write"

    def foreach_batch() -> str:
        return kafka_foreach_batch(spark, cfg, base)

    def mllib() -> str:
        from pyspark.ml import Pipeline
        from pyspark.ml.feature import VectorAssembler
        from pyspark.ml.regression import LinearRegression

        df = spark.createDataFrame(
            [(float(i), 2.0 * i + 1) for i in range(20)], "x double, y double"
        )
        pipe = Pipeline(
            stages=[
                VectorAssembler(inputCols=["x"], outputCol="features"),
                LinearRegression(featuresCol="features", labelCol="y", maxIter=5),
            ]
        )
        model = pipe.fit(df)
        pred = model.transform(df).select("prediction").first()[0]
        model.write().overwrite().save(str(base / "model"))
        return f"fit, transform (first prediction {pred:.2f}), save"

    def gx() -> str:
        from lakeloop.quality.gx_runner import validate_table_level

        suite = {
            "name": "bench_suite",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            ],
        }
        df = spark.read.format("delta").load(t1)
        res = validate_table_level(df, suite, None, "bench-connect")
        if not res.success:
            raise AssertionError(f"GX says the suite failed: {res}")
        return "validate_table_level: success"

    def udf() -> str:
        from pyspark.sql import functions as F

        @F.udf("string")
        def joined(x: int) -> str:
            from lakeloop import uris

            return uris.join("/lake", str(x))

        v = spark.range(1).select(joined("id")).first()[0]
        return f"server's Python worker imported lakeloop: {v}"

    def spark_context() -> str:
        return str(spark.sparkContext.defaultParallelism)

    def jvm() -> str:
        return str(spark._jvm)  # type: ignore[attr-defined]

    def new_session() -> str:
        from lakeloop.session import isolated

        s2 = isolated(spark)
        return f"isolated(): {s2.range(3).count()} rows on a new session"

    def storage_read() -> str:
        from lakeloop import storage

        path = scratch / "spec.txt"
        path.write_text("hello")
        return storage.read_text(spark, str(path))

    for what, fn in [
        ("Delta write/read by path (partitioned)", delta_path),
        ("Delta replaceWhere overwrite", replace_where),
        ("DeltaTable.isDeltaTable", is_delta_table),
        ("DeltaTable.forPath().history()", delta_table_history),
        ("DeltaTable.forPath().merge()", delta_table_merge),
        ("MERGE / DESCRIBE HISTORY as SQL", sql_merge),
        ("DataFrame.observe + Observation", observe),
        ("foreachBatch, Kafka AvailableNow stream", foreach_batch),
        ("pyspark.ml Pipeline (LinearRegression)", mllib),
        ("GX 1.x Spark datasource (gx_runner)", gx),
        ("Python UDF importing lakeloop", udf),
        ("spark.sparkContext", spark_context),
        ("spark._jvm (py4j)", jvm),
        ("session.isolated (newSession)", new_session),
        ("lakeloop.storage.read_text", storage_read),
    ]:
        attempt(what, fn, out)
    spark.stop()
    return out


def kafka_foreach_batch(spark, cfg, base: Path) -> str:
    """3 messages on a topic of its own, read with AvailableNow into Delta by foreachBatch."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    from lakeloop import kafka_broker
    from lakeloop.kafka_io import python_client_config

    started = False
    if not kafka_broker.answers(cfg):
        say(f"kafka: starting the test broker on {cfg.kafka.bootstrap_servers}")
        kafka_broker.up(cfg)
        started = True
    topic = f"bench.connect.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**python_client_config(cfg))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = KafkaProducer(bootstrap_servers=cfg.kafka.bootstrap_servers)
        for i in range(3):
            producer.send(topic, f"m{i}".encode())
        producer.flush()
        producer.close()
        target = str(base / "from_kafka")

        def write_batch(batch_df, batch_id: int) -> None:
            batch_df.selectExpr("CAST(value AS STRING) AS v").write.format("delta").mode(
                "append"
            ).save(target)

        q = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", cfg.kafka.bootstrap_servers)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .load()
            .writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", str(base / "ckpt"))
            .trigger(availableNow=True)
            .start()
        )
        q.awaitTermination(300)
        n = spark.read.format("delta").load(target).count()
        if n != 3:
            raise AssertionError(f"{n} rows written by foreachBatch, expected 3")
        return "3 messages -> Delta through foreachBatch"
    finally:
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
            if started:
                kafka_broker.down(cfg)


def py4j_modules() -> dict[str, list[str]]:
    """lakeloop modules that use py4j or Delta's Python API, with what they use."""
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "lakeloop").rglob("*.py")):
        hits = sorted({m.group(0).strip(".") for m in PY4J.finditer(path.read_text())})
        if hits:
            out[str(path.relative_to(ROOT / "src"))] = hits
    return out


def real_jobs(scratch: Path, env: dict[str, str], timeout: float) -> list[Check]:
    """jobs/ingest_files.py then jobs/validate.py as Connect clients on a one-listing day."""
    from lakeloop.config import load_config
    from lakeloop.generate.houses import generate
    from lakeloop.spec import load_pipeline

    lake = scratch / "lake-jobs"
    cfg = load_config("test", {"lakehouse_root": str(lake)}, project_root=ROOT)
    generate(load_pipeline(cfg, "houses"), start=DAY, days=1, rows_per_day=1, produce=False)
    out = []
    for job in ("ingest_files", "validate"):
        cmd = [sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--pipeline", "houses"]
        cmd += ["--env", "test", "--set", f"lakehouse_root={lake}", "--set", f"spark.remote={URL}"]
        cmd += ["--date", str(DAY)]
        t = time.monotonic()
        debug = {**env, "LAKELOOP_LOG_LEVEL": "DEBUG"}  # the job logs its traceback
        p = subprocess.run(cmd, env=debug, capture_output=True, text=True, timeout=timeout)
        lines = (p.stdout + p.stderr).splitlines()
        errors = [ln for ln in lines if " ERROR " in ln]
        detail = f"exit {p.returncode} in {time.monotonic() - t:.1f}s"
        if errors:
            detail += ": " + errors[-1].split(" ERROR ", 1)[1][:300]
        frames = [m for ln in lines if (m := FRAME.search(ln))]
        if frames and p.returncode != 0:  # the traceback's last lakeloop frames, outer first
            chain = " > ".join(f"{f['file'][9:]}:{f['line']} {f['fn']}" for f in frames[-4:])
            detail += f" [at {chain}]"
        out.append(Check(f"jobs/{job}.py over Connect", p.returncode == 0, detail))
        say(f"  {job}: {detail}")
        if p.returncode != 0:
            break
    return out


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/connect.py", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed rounds (every side once a round)")
    p.add_argument("--skip-levers", action="store_true", help="only classic submit vs connect")
    p.add_argument("--skip-compat", action="store_true", help="no compatibility table")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from lakeloop import connect_server

    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    scratch = BENCH_ROOT / f"connect-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir(parents=True)
    res = timing.Results()
    sides: list[TaskSide] | None = None
    checks: list[Check] = []
    bench = None
    try:
        bench = Bench(args, scratch)
        say(f"scratch {scratch}; load avg {os.getloadavg()[0]:.1f}; starting the server {URL}")
        t = time.monotonic()
        state = connect_server.up(bench.cfg)
        say(f"connect server up in {time.monotonic() - t:.1f}s: {state}")
        pid = state["pid"]
        assert isinstance(pid, int)
        sides = res.part("per-task start", lambda: bench.measure(pid))
        if not args.skip_compat:
            say("compatibility over Connect")
            checks = res.part("compatibility", lambda: compatibility(bench.cfg, scratch)) or []
            checks += (
                res.part("real jobs", lambda: real_jobs(scratch, bench.env, args.timeout)) or []
            )
    except BenchError as e:
        res.failed.append(str(e))
        say(f"FAILED: {e}")
    finally:
        if bench is not None:
            connect_server.down(bench.cfg)
        if args.keep:
            say(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    if sides:
        print_sides(sides)
        best = {s.name: s.best for s in sides}
        classic, connect = best["classic submit"], best["connect client"]
        for name, b in best.items():
            if name.startswith("classic submit +"):
                res.notes.append(f"{name}: best {b:.2f}s vs {classic:.2f}s as configured")
        print(f"metric task_start_classic_s {classic:.2f}")
        print(f"metric task_start_connect_s {connect:.2f}")
        print(f"ratio connect_start_speedup {classic / connect:.2f}")
    if checks:
        print()
        print(f"{'over Spark Connect (Spark 4.1.1, Delta 4.4.0, no Delta Connect plugin)':<46}")
        for c in checks:
            print(f"  {'works' if c.ok else 'FAILS':<6} {c.what:<42} {c.detail}")
        print()
        print("lakeloop modules on py4j / Delta's Python API (need changes for Connect):")
        for mod, uses in py4j_modules().items():
            print(f"  {mod:<40} {', '.join(uses)}")
    for n in res.notes:
        print(f"# note: {n}")
    say(f"done in {time.perf_counter() - timing.T0:.1f}s")
    for f in res.failed:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
