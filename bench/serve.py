"""make bench-serve: the online server's latency and throughput, and its scores against the
batch path's.

Setup (untimed, each step's duration printed): a fresh scratch folder under .bench/ holds the
lakehouse, the MLflow tracking DB + artifacts, the online store and the server's model cache
(the `dev` config with `--set`-style overrides pointing there). The houses example is generated
for `--days` days (`--rows-per-day` listings a day, a backlog of `--history` past sales, no
faults); its sales (the labels) are produced to a topic of the bench's own on the project's
Kafka broker (started with `lakeloop.kafka_broker.up` if it is not running, and stopped again
right after the sales are ingested; the topic is deleted). Then, in this process with one
SparkSession (`lakeloop.session.build_spark`): ingest_files per day, ingest_kafka, validate per
day, build_features over the days, build_training_set + train as of 60 days after the last day
(every sale has happened; the first model must become the champion), predict and materialize
the last day. Spark is stopped before anything is timed.

The server: `.venv/bin/lakeloop serve --pipeline <the bench's spec> --port <free loopback port>
--env dev --set ...` as a subprocess, ready when GET /health answers 200 (`metric
serve_start_s`: process start to that).

The load (requests built and JSON-encoded beforehand; a request's latency is the client's time
from sending it to having read the whole response, on a keep-alive `http.client` connection;
every response is checked afterwards: 200, one prediction per record, the champion's version):
- c1: `--requests` single-record POST /v1/predict, one after another on one connection;
- c8: `--requests-c8` single-record requests from `--concurrency` threads, each with its own
  connection (`metric serve_rps_c8`: requests / wall time; the client threads share this
  process's GIL and the machine's 2 cores with the server);
- batch: `--batch-requests` POST /v1/predict of `--batch-size` records each, on one connection.
Records are the champion's input columns (as GET /v1/model lists them) of the last day's
feature rows, read with delta-rs, cycled. Each load is preceded by an untimed warm-up and
watched for noise (CPU of the bench + server vs everything else on the machine, cpu_watch).

Parity: every scored row of the last day's predictions table (rows with `_error` are skipped
and counted) is served twice, by key (POST /v1/predict/by-key, features from the online store)
and by value (POST /v1/predict with the feature row's inputs and key), in requests of
`--batch-size`. `metric serve_vs_batch_max_rel_diff` is the max over rows and both ways of
|table - served| / max(1, |table|) for `prediction` (and `probability`, class 1, for a
classifier), comparing with the table's challenger columns when a row was served by the
challenger. The answering model's version must equal the table's (`model_version`, or
`challenger_version`), else the bench fails.

Goals: serve_p50_ms <= 2, serve_p99_ms <= 10 (c1), serve_vs_batch_max_rel_diff <= 1e-9.
A failed check (a response that is not 200 or not one prediction per record, a version
mismatch, a server that does not come up, a request log (Delta, read after the server stopped)
that does not hold one row per record scored) fails the bench (exit 1). The server is stopped
by its pid (SIGTERM, SIGKILL after 20 s); the scratch folder is removed unless --keep.

    .venv/bin/python bench/serve.py [--requests N] [--requests-c8 N] [--batch-requests N]
                                    [--rows-per-day N] [--history N] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timing
from cpu_watch import CpuWatch
from timing import BenchError, say

from lakeloop.serving.preview import PreviewError, ServeProcess

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
START = dt.date(2026, 1, 1)
TRAIN_AFTER_DAYS = 60  # train as of the last day + this: every sale (5-45 days on) happened
GOALS = {"serve_p50_ms": 2.0, "serve_p99_ms": 10.0, "serve_vs_batch_max_rel_diff": 1e-9}
STOP_WAIT_S = 20.0
_TICK = os.sysconf("SC_CLK_TCK")
SENT = {"records": 0}  # records sent in 200-answered requests (the request log must hold them)


# --- setup: the lakehouse, the registry, the online store ------------------------------------


@dataclass
class Prepared:
    """What the setup made: the spec file the server gets, the day served, the tables' paths,
    the model's input columns and the entity key columns, the `--set` pairs of the config."""

    spec_path: Path
    day: dt.date
    features_path: str
    predictions_path: str
    inputs: list[str]
    keys: list[str]
    task: str
    set_pairs: list[str]
    champion_version: str
    log_path: str  # the server's request log (Delta)
    steps: dict[str, float] = field(default_factory=dict)


def set_pairs(scratch: Path) -> list[str]:
    """The config overrides (as `--set KEY=VALUE`) that keep the bench's state in `scratch`."""
    return [
        f"lakehouse_root={scratch / 'lake'}",
        f"mlflow.tracking_uri=sqlite:///{scratch / 'mlflow.db'}",
        f"mlflow.artifact_root={scratch / 'mlartifacts'}",
        f"serving.online_store.path={scratch / 'online.db'}",
        f"serving.model_cache={scratch / 'model-cache'}",
        "quality.data_docs=false",
    ]


def write_spec(scratch: Path, topic: str) -> Path:
    """The houses spec with the bench's own sales topic (never sharing Kafka state)."""
    import yaml

    data = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    data["sources"]["kafka"][0]["topic"] = topic
    path = scratch / "houses-bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _delete_topic(cfg, source) -> None:
    from kafka import KafkaAdminClient

    from lakeloop.kafka_io import python_client_config

    admin = KafkaAdminClient(**python_client_config(cfg, source), request_timeout_ms=15_000)
    try:
        admin.delete_topics([source.topic])
    finally:
        admin.close()


def prepare(args: argparse.Namespace, scratch: Path) -> Prepared:
    from lakeloop import kafka_broker
    from lakeloop.config import load_config, parse_set_pairs
    from lakeloop.generate import houses as gen
    from lakeloop.jobs import (
        build_features,
        build_training_set,
        ingest_files,
        ingest_kafka,
        materialize,
        predict,
        train,
        validate,
    )
    from lakeloop.kafka_io import ensure_topic
    from lakeloop.ml.pipeline import input_columns
    from lakeloop.session import build_spark
    from lakeloop.spec import load_pipeline

    pairs = set_pairs(scratch)
    overrides = parse_set_pairs(pairs)
    # one long-lived driver doing the whole setup: the full JIT pays off (as in the tests)
    overrides["spark"] = {"driver_java_options": "", "shuffle_partitions": 2}
    cfg = load_config(args.env, overrides, project_root=ROOT)
    spec_path = write_spec(scratch, f"bench.sales.{uuid.uuid4().hex[:10]}")
    pipeline = load_pipeline(cfg, str(spec_path))
    spec = pipeline.spec
    if spec.model is None or spec.serving is None:
        raise BenchError(f"{spec_path}: the houses spec needs `model` and `serving` sections")
    days = [START + dt.timedelta(days=n) for n in range(args.days)]
    last, as_of = days[-1], days[-1] + dt.timedelta(days=TRAIN_AFTER_DAYS)
    steps: dict[str, float] = {}

    def step(name: str, fn):
        t = time.perf_counter()
        out = fn()
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - t
        say(f"  setup {name}: {time.perf_counter() - t:.1f}s")
        return out

    source = spec.sources.kafka[0]
    spark = None
    try:
        was_up = kafka_broker.status(cfg)["answers"]
        step("kafka broker up" + (" (was running)" if was_up else ""), lambda: kafka_broker.up(cfg))
        try:
            step("kafka topic", lambda: ensure_topic(cfg, source))
            counts = step(
                "generate",
                lambda: gen.generate(
                    pipeline,
                    start=START,
                    days=args.days,
                    rows_per_day=args.rows_per_day,
                    malformed=0.0,
                    history=args.history,
                ),
            )
            say(f"  generated {counts['listings']} listings, {counts['sales']} sales")
            spark = step("spark session", lambda: build_spark(cfg, app_name="lakeloop-bench-serve"))
            for d in days:
                step("ingest_files", lambda d=d: ingest_files.run(spark, pipeline, d))
            step("ingest_kafka", lambda: ingest_kafka.run(spark, pipeline, last))
        finally:  # the broker is not needed past this point
            try:
                _delete_topic(cfg, source)
            except Exception as e:  # litter, not a failure of the bench
                say(f"  could not delete topic {source.topic}: {e}")
            if not was_up:
                step("kafka broker down", lambda: kafka_broker.down(cfg))
        for d in days:
            step("validate", lambda d=d: validate.run(spark, pipeline, d))
        step("build_features", lambda: build_features.backfill(spark, pipeline, days[0], last))
        step("build_training_set", lambda: build_training_set.run(spark, pipeline, as_of))
        rec = step("train", lambda: train.run(spark, pipeline, as_of))
        if rec.details.get("decision") != "promoted":
            raise BenchError(
                f"the first model was not promoted to champion ({rec.details.get('decision')}: "
                f"{rec.details.get('reason')}); nothing to serve"
            )
        pred = step("predict", lambda: predict.run(spark, pipeline, last))
        mat = step("materialize", lambda: materialize.run(spark, pipeline, last))
    finally:
        if spark is not None:
            spark.stop()
    say(
        f"  champion {spec.model.name} v{rec.details['model_version']} "
        f"(metrics {rec.details.get('metrics')}); {pred.output_counts[spec.model.predictions]} "
        f"predictions for {last}; {mat.output_counts['online_store']} rows materialized"
    )
    if pred.details["champion_version"] != rec.details["model_version"]:
        raise BenchError(
            f"predict scored with v{pred.details['champion_version']}, not the model just "
            f"trained (v{rec.details['model_version']})"
        )
    return Prepared(
        spec_path=spec_path,
        day=last,
        features_path=pipeline.table_path(spec.features.table),
        predictions_path=pipeline.table_path(spec.model.predictions),
        inputs=input_columns(spec.model),
        keys=spec.entity_keys,
        task=spec.model.task,
        set_pairs=pairs,
        champion_version=str(rec.details["model_version"]),
        log_path=pipeline.table_path(spec.serving.log_table),
        steps=steps,
    )


# --- reading the day's rows without a JVM ----------------------------------------------------


def day_rows(path: str, date_column: str, day: dt.date) -> list[dict[str, Any]]:
    """The rows of the Delta table at `path` dated `day` in `date_column`, as Python values."""
    from lakeloop.orchestration.tables import dataset

    rows = dataset(path).to_table().to_pylist()
    out = [r for r in rows if _as_date(r[date_column]) == day]
    if not out:
        raise BenchError(f"{path} has no rows with {date_column} = {day}")
    return out


def _as_date(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)) if v is not None else None


def _ts_key(v: Any) -> Any:
    """A timestamp as a comparable instant (aware datetimes; naive ones taken as UTC)."""
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    return v


# --- the server ------------------------------------------------------------------------------


def start_server(
    prep: Prepared, scratch: Path, env_name: str, timeout_s: float
) -> tuple[ServeProcess, float]:
    """`lakeloop serve` on a free loopback port (lakeloop.serving.preview.ServeProcess, as the
    demo runs it), healthy, and the seconds it took; stopped again when it does not start."""
    env = {**os.environ, "LAKELOOP_HOME": str(ROOT), "PYTHONUNBUFFERED": "1"}
    for var in ("LAKELOOP_ENV", "LAKELOOP_LOG_LEVEL"):
        env.pop(var, None)
    server = ServeProcess(
        str(prep.spec_path), env_name, prep.set_pairs, scratch / "server.log", ROOT, env
    )
    try:
        return server, server.start(timeout_s)
    except PreviewError as e:
        server.stop(STOP_WAIT_S)
        raise BenchError(str(e)) from None


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process `pid` has used so far (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def served_inputs(port: int, prep: Prepared, notes: list[str]) -> None:
    """The champion's input columns as the server reads them (GET /v1/model) become the
    records' columns (noted when they are not the spec's); BenchError when the server's
    champion is not the version that scored the predictions table."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/v1/model")
        resp = conn.getresponse()
        body = parsed("/v1/model", resp.status, resp.read())
    finally:
        conn.close()
    champion = (body.get("aliases") or {}).get("champion") or {}
    if str(champion.get("version")) != prep.champion_version:
        raise BenchError(
            f"the server's champion is version {champion.get('version')!r}, the predictions "
            f"table's is {prep.champion_version}"
        )
    names = [c["name"] for c in champion.get("inputs") or []]
    if not names:
        raise BenchError(f"GET /v1/model lists no input columns: {body}")
    if set(names) != set(prep.inputs):
        notes.append(f"the served model reads {names}; the spec's features are {prep.inputs}")
    prep.inputs = names


# --- the client ------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int, timeout_s: float = 30.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        self.headers = {"Content-Type": "application/json"}

    def post_raw(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        """(status, response body, seconds from sending to the whole response read)."""
        t = time.perf_counter()
        self.conn.request("POST", path, body, self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t

    def post(self, path: str, payload: dict) -> dict:
        status, data, _ = self.post_raw(path, encode(payload))
        return parsed(path, status, data)

    def close(self) -> None:
        self.conn.close()


def encode(payload: dict) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


def parsed(path: str, status: int, data: bytes) -> dict:
    if status != 200:
        raise BenchError(f"POST {path} answered {status}: {data[:500].decode(errors='replace')}")
    return json.loads(data)


def check_response(
    path: str, status: int, data: bytes, records: int, version: str
) -> list[dict[str, Any]]:
    """The predictions of a 200 response with one prediction per record, each by `version`."""
    preds = parsed(path, status, data).get("predictions")
    if not isinstance(preds, list) or len(preds) != records:
        got = "none" if not isinstance(preds, list) else len(preds)
        raise BenchError(f"POST {path}: {got} predictions for {records} records")
    for p in preds:
        if str(p.get("model_version")) != version:
            raise BenchError(
                f"POST {path}: answered by model version {p.get('model_version')!r} "
                f"({p.get('model_alias')}), the predictions table's is {version}"
            )
    return preds


# --- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """One load's client-measured latencies (s), wall time and the server's CPU seconds."""

    name: str
    records: int  # per request
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0

    def pct(self, q: float) -> float:
        """The q-quantile (nearest rank) in ms."""
        xs = sorted(self.latencies)
        return xs[max(0, min(len(xs) - 1, int(-(-q * len(xs) // 1)) - 1))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


def bodies(records: list[dict], size: int, count: int) -> list[bytes]:
    """`count` request bodies of `size` records each, cycling through `records`."""
    out = []
    for i in range(count):
        chunk = [records[(i * size + j) % len(records)] for j in range(size)]
        out.append(encode({"records": chunk}))
    return out


def run_sequential(port: int, reqs: list[bytes], size: int, version: str, load: Load) -> None:
    client = Client(port)
    try:
        raw = []
        t = time.perf_counter()
        for body in reqs:
            status, data, secs = client.post_raw("/v1/predict", body)
            load.latencies.append(secs)
            raw.append((status, data))
        load.wall = time.perf_counter() - t
    finally:
        client.close()
    for status, data in raw:
        check_response("/v1/predict", status, data, size, version)


def run_concurrent(port: int, reqs: list[bytes], threads: int, version: str, load: Load) -> None:
    """`threads` clients, each with its own connection, sending their share of `reqs`."""
    shares = [reqs[i::threads] for i in range(threads)]
    results: list[list[tuple[int, bytes, float]]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    go = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        client = Client(port)
        try:
            client.post_raw("/v1/predict", shares[i][0])  # connect before the clock starts
            go.wait()
            for body in shares[i]:
                results[i].append(client.post_raw("/v1/predict", body))
        except BaseException as e:  # reported by the main thread
            errors.append(e)
            go.abort()
        finally:
            client.close()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for th in pool:
        th.start()
    try:
        go.wait()
    except threading.BrokenBarrierError:
        pass
    t = time.perf_counter()
    for th in pool:
        th.join()
    load.wall = time.perf_counter() - t
    if errors:
        raise BenchError(f"a client thread failed: {type(errors[0]).__name__}: {errors[0]}")
    for res in results:
        for status, data, secs in res:
            load.latencies.append(secs)
            check_response("/v1/predict", status, data, 1, version)


def measure_loads(
    args: argparse.Namespace,
    port: int,
    server_pid: int,
    records: list[dict],
    version: str,
    notes: list[str],
) -> list[Load]:
    warm = [(1, b) for b in bodies(records, 1, 200)]
    warm += [(args.batch_size, b) for b in bodies(records, args.batch_size, 10)]
    client = Client(port)
    try:
        for n, body in warm:
            status, data, _ = client.post_raw("/v1/predict", body)
            check_response("/v1/predict", status, data, n, version)
    finally:
        client.close()
    SENT["records"] += 200 + 10 * args.batch_size
    say(f"warm-up: {len(warm)} requests")
    plan = [
        (Load("c1: 1 record, 1 connection", 1), bodies(records, 1, args.requests), 1),
        (
            Load(f"c{args.concurrency}: 1 record, {args.concurrency} connections", 1),
            bodies(records, 1, args.requests_c8),
            args.concurrency,
        ),
        (
            Load(f"batch: {args.batch_size} records, 1 connection", args.batch_size),
            bodies(records, args.batch_size, args.batch_requests),
            1,
        ),
    ]
    loads = []
    for load, reqs, threads in plan:
        cpu0 = proc_cpu_s(server_pid)
        with CpuWatch(load.name, notes, say, also=(server_pid,), note_always=True):
            if threads == 1:
                run_sequential(port, reqs, load.records, version, load)
            else:
                run_concurrent(port, reqs, threads, version, load)
        load.server_cpu = proc_cpu_s(server_pid) - cpu0
        # + one untimed request per connection of the concurrent load (its connect)
        SENT["records"] += len(load.latencies) * load.records + (threads if threads > 1 else 0)
        say(
            f"{load.name}: {len(load.latencies)} requests in {load.wall:.2f}s, p50 "
            f"{load.pct(0.5):.2f} ms, p99 {load.pct(0.99):.2f} ms, {load.rps:,.0f} req/s, "
            f"server CPU {load.server_cpu / len(load.latencies) * 1000:.2f} ms/request"
        )
        loads.append(load)
    return loads


# --- parity with the batch path --------------------------------------------------------------


def rel_diff(table: float, served: float) -> float:
    return abs(table - served) / max(1.0, abs(table))


def _probability(v: Any) -> float | None:
    """The served probability of class 1 (a list of class probabilities, or one number)."""
    if v is None:
        return None
    return float(v[1]) if isinstance(v, list) else float(v)


def parity(port: int, prep: Prepared, batch: int, notes: list[str]) -> float:
    """Max relative difference between the day's table predictions and the served ones (by key
    and by value); BenchError when a served version is not the table's."""
    preds = day_rows(prep.predictions_path, "prediction_date", prep.day)
    feats = day_rows(prep.features_path, "feature_date", prep.day)
    by_row = {(*[f[k] for k in prep.keys], _ts_key(f["feature_ts"])): f for f in feats}
    scored = [p for p in preds if p.get("_error") is None]
    skipped = len(preds) - len(scored)
    rows = []
    for p in scored:
        f = by_row.get((*[p[k] for k in prep.keys], _ts_key(p["feature_ts"])))
        if f is None:
            raise BenchError(
                f"prediction of {[p[k] for k in prep.keys]} at {p['feature_ts']} has no feature "
                f"row of {prep.day} in {prep.features_path}"
            )
        rows.append((p, f))
    if not rows:
        raise BenchError(f"no scored prediction of {prep.day} to compare ({skipped} with _error)")
    classifier = prep.task == "classification"
    worst, where = 0.0, ""
    client = Client(port)
    try:
        for way in ("by-key", "by-value"):
            for i in range(0, len(rows), batch):
                chunk = rows[i : i + batch]
                if way == "by-key":
                    path = "/v1/predict/by-key"
                    payload = {"keys": [{k: p[k] for k in prep.keys} for p, _ in chunk]}
                else:
                    path = "/v1/predict"
                    cols = [*prep.keys, *prep.inputs]
                    payload = {"records": [{c: f[c] for c in cols} for _, f in chunk]}
                got = client.post(path, payload).get("predictions") or []
                SENT["records"] += len(chunk)
                if len(got) != len(chunk):
                    raise BenchError(f"POST {path}: {len(got)} predictions for {len(chunk)} rows")
                for (p, _), s in zip(chunk, got, strict=True):
                    key = [p[k] for k in prep.keys]
                    if s.get("error"):
                        raise BenchError(f"{way} {key}: not scored: {s['error']}")
                    prefix = "challenger_" if s.get("model_alias") == "challenger" else ""
                    want_version = p["challenger_version" if prefix else "model_version"]
                    if str(s.get("model_version")) != str(want_version):
                        raise BenchError(
                            f"{way} {key}: served by model version {s.get('model_version')!r} "
                            f"({s.get('model_alias')}); the predictions table has "
                            f"{prefix}model_version {want_version}"
                        )
                    pairs = [("prediction", p[f"{prefix}prediction"], s.get("prediction"))]
                    if classifier:
                        pairs.append(
                            (
                                "probability",
                                p[f"{prefix}probability"],
                                _probability(s.get("probability")),
                            )
                        )
                    for what, a, b in pairs:
                        if a is None or b is None:
                            raise BenchError(f"{way} {key}: {what} table {a!r}, served {b!r}")
                        d = rel_diff(float(a), float(b))
                        if d > worst:
                            worst, where = d, f"{way} {key} {what}: table {a!r}, served {b!r}"
    finally:
        client.close()
    say(
        f"parity: {len(rows)} rows x 2 ways, max rel diff {worst:.3g}"
        + (f" ({where})" if where else "")
    )
    notes.append(
        f"parity over {len(rows)} scored rows of {prep.day} (by key and by value; {skipped} rows "
        f"with _error skipped); the largest difference: {where or 'none'}"
    )
    return worst


def check_request_log(path: str, notes: list[str]) -> None:
    """After the server stopped: its request log (Delta) holds one row per record sent."""
    from lakeloop.orchestration.tables import TableMissing, dataset

    try:
        rows = dataset(path).count_rows()
    except TableMissing:
        rows = 0
    sent = SENT["records"]
    if rows != sent:
        raise BenchError(
            f"the request log {path} holds {rows} rows after the server stopped; {sent} records "
            "were scored (one row each expected)"
        )
    notes.append(f"request log: {rows} rows for the {sent} records scored ({path})")


# --- report ----------------------------------------------------------------------------------


def report(values: dict[str, float | None], loads: list[Load], notes: list[str]) -> None:
    if loads:
        print()
        head = f"{'load':<36} {'requests':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
        print(f"{head} {'max ms':>7} {'req/s':>8} {'rec/s':>9} {'srv cpu ms/req':>14}")
        for ld in loads:
            n = len(ld.latencies)
            print(
                f"{ld.name:<36} {n:>8} {ld.pct(0.5):7.2f} {ld.pct(0.9):7.2f} {ld.pct(0.99):7.2f} "
                f"{max(ld.latencies) * 1000:7.2f} {ld.rps:8,.0f} {ld.rps * ld.records:9,.0f} "
                f"{ld.server_cpu / n * 1000:14.2f}"
            )
        print(
            "  (client-measured: send -> whole response read, keep-alive http.client; srv cpu: "
            "the server process's CPU seconds over the load / requests)"
        )
    print()
    for name, goal in GOALS.items():
        v = values.get(name)
        if v is None:
            print(f"# {name}: not measured")
        else:
            print(f"# {name}: goal <= {goal:g}, {'met' if v <= goal else 'NOT met'}")
    for name, v in values.items():
        if v is not None:
            print(f"metric {name} {v:.3g}" if "rel_diff" in name else f"metric {name} {v:.2f}")
    for n in notes:
        print(f"# note: {n}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/serve.py", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="c1 single-record requests")
    p.add_argument("--requests-c8", type=int, default=4000, help="concurrent single-record ones")
    p.add_argument("--concurrency", type=int, default=8, help="client threads of the c8 load")
    p.add_argument("--batch-requests", type=int, default=200, help="batch requests")
    p.add_argument("--batch-size", type=int, default=100, help="records per batch request")
    p.add_argument("--days", type=int, default=3, help="days of example data")
    p.add_argument("--rows-per-day", type=int, default=200, help="listings a day")
    p.add_argument("--history", type=int, default=600, help="backlog sales before the first day")
    p.add_argument("--env", default="dev", help="config environment")
    p.add_argument("--start-timeout", type=float, default=180.0, help="s for /health to be 200")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    for name in ("requests", "requests_c8", "concurrency", "batch_requests", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.days < 1 or args.rows_per_day < 1 or args.history < 0:
        p.error("--days and --rows-per-day must be at least 1, --history at least 0")
    if args.requests_c8 < args.concurrency:
        p.error("--requests-c8 must be at least --concurrency")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # here + the server
    scratch = BENCH_ROOT / f"serve-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir(parents=True)
    say(
        f"scratch {scratch}; {args.days} days x {args.rows_per_day} listings (+{args.history} "
        f"backlog sales); load avg {os.getloadavg()[0]:.1f}"
    )
    res = timing.Results()
    values: dict[str, float | None] = {}
    loads: list[Load] = []
    server: ServeProcess | None = None
    start_s: float | None = None
    try:
        t = time.perf_counter()
        prep = res.part("setup", lambda: prepare(args, scratch))
        if prep is not None:
            say(f"setup done in {time.perf_counter() - t:.1f}s (untimed)")
            res.notes.append(
                "setup (untimed): " + ", ".join(f"{k} {v:.1f}s" for k, v in prep.steps.items())
            )
            started = res.part(
                "server start", lambda: start_server(prep, scratch, args.env, args.start_timeout)
            )
            server, start_s = started or (None, None)
        if prep is not None and start_s is not None:
            values["serve_start_s"] = start_s
            say(f"server pid {server.pid} on 127.0.0.1:{server.port}, healthy in {start_s:.1f}s")
            res.part("model inputs", lambda: served_inputs(server.port, prep, res.notes))
            records = [
                {c: f[c] for c in prep.inputs}
                for f in day_rows(prep.features_path, "feature_date", prep.day)
            ]
            values["serve_vs_batch_max_rel_diff"] = res.part(
                "parity", lambda: parity(server.port, prep, args.batch_size, res.notes)
            )
            got = res.part(
                "load",
                lambda: measure_loads(
                    args, server.port, server.pid, records, prep.champion_version, res.notes
                ),
            )
            if got:
                loads = got
                c1, cn, batch = got
                values["serve_p50_ms"] = c1.pct(0.5)
                values["serve_p99_ms"] = c1.pct(0.99)
                values[f"serve_rps_c{args.concurrency}"] = cn.rps
                values[f"serve_batch{args.batch_size}_ms"] = batch.pct(0.5)
    finally:
        if server is not None:
            say(f"server (pid {server.pid}) {server.stop(STOP_WAIT_S)}")
            if start_s is not None:
                res.part("request log", lambda: check_request_log(prep.log_path, res.notes))
            if server.proc is not None and server.proc.returncode not in (0, -signal.SIGTERM):
                res.notes.append(
                    f"the server exited {server.proc.returncode}; its last lines:\n"
                    + server.tail(10)
                )
        if args.keep:
            say(f"scratch kept in {scratch} (server.log: the server's output)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    order = ["serve_p50_ms", "serve_p99_ms", f"serve_rps_c{args.concurrency}"]
    order += [f"serve_batch{args.batch_size}_ms", "serve_vs_batch_max_rel_diff", "serve_start_s"]
    report({k: values.get(k) for k in order}, loads, res.notes)
    return res.finish([], lambda *_: None)


if __name__ == "__main__":
    sys.exit(main())
