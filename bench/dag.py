"""make bench-dag: the lifecycle DAG through the project's own Airflow at two data sizes 8x apart.

Everything lives under `.bench/dag/` (wiped at the start, kept at the end for its logs): the
lakehouse, MLflow (SQLite + artifacts), a copy of conf/pipelines/houses.yaml in a pipelines
folder of its own (its own Kafka topic, no task retries: a failure fails fast) and the Airflow
home; Airflow listens on 127.0.0.1:28180. All of it reaches Airflow, the DAGs and every job as
`--set` pairs on the `test` config environment (its broker on 127.0.0.1:29092 is started if it
is down, and never stopped; the bench's topic is deleted at the end).

1. D1, bootstrap (untimed): `--rows` listings plus a backlog of `--history` past sales. The
   pipeline has no champion, so the lifecycle runs ingest_files ∥ ingest_kafka → validate →
   build_features, skips predict/monitor/report, and its `retrain_trigger` emits the `retrain`
   Asset; the scheduler starts the training DAG on it (build_training_set → train → champion
   gate), which the bench waits for. It also warms Airflow and the OS caches for the timed runs.
2. D2, small: `--rows` listings (and their sales on Kafka), the whole lifecycle: ingest ∥ →
   validate → build_features → champion_check → predict → monitor → report → retrain_trigger.
3. D3, large: 8 x `--rows` listings, the same DAG.

Each day's data is generated just before its run (the Kafka ingest reads what is new on the
topic). A run is triggered through the REST API (`runs.trigger_day`) and timed by Airflow's own
DAG-run start and end (the time the client saw, trigger to finished, is printed beside it).

Per task the table shows the task instance's duration in Airflow (TI), the job's own time from
the run log (`duration_s`, measured inside the job after its SparkSession started: the body)
and their difference, the task's overhead: Airflow starting the task process, spark-submit,
the JVM, Python imports, the SparkSession, writing the run log's last row and stopping.

- `metric task_overhead_s`: the mean task overhead over the small run's Spark tasks.
- `metric fixed_overhead_s`: what the small run's DAG run costs beyond its jobs' work: its wall
  time minus the job bodies on its critical path (the chain of tasks, each preceded by the
  upstream that finished last, that ends with the last task). That is the critical path's task
  overheads + its Python tasks (champion_check, retrain_trigger) + the scheduler's gaps
  between a task's upstream ending and the task starting; the three are printed. It does not
  shrink with less data. (A second reading, the intercept a of T = a + b * rows fitted through
  the two runs, is printed as a note.)
- `metric growth_exponent`: k in T_large / T_small = 8^k, T the DAG run's wall time; the job
  bodies' own exponent (critical path) is printed beside it.
- `metric dag_run_s_small` / `metric dag_run_s_large`: the two DAG runs' wall times.

Goals: growth_exponent <= 1.05, fixed_overhead_s <= 60. The machine has 2 cores: the CPU used
by everything outside the bench and its Airflow during each timed run is reported, and other
Spark JVMs are named when any ran.

    .venv/bin/python bench/dag.py [--rows N] [--history H] [--env test] [--timeout S] [-v]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cpu_watch
import timing
from timing import BenchError, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench" / "dag"
PORT = 28180
GROWTH = 8
D1 = dt.date(2026, 3, 2)  # bootstrap day; D1 + 1 small, D1 + 2 large
DEFAULT_ROWS = 4000
MALFORMED = 0.01  # share of malformed file records / Kafka messages, as in the demo
SALE_DAYS = (2, 12)
GOALS = {"growth_exponent": 1.05, "fixed_overhead_s": 60.0}  # both: at most
TRAINING_WAIT_S = 120.0  # the scheduler starts an Asset-triggered run ~1 s after the event


# --- set-up ----------------------------------------------------------------------------------


def set_pairs(topic_dir: Path) -> list[str]:
    """The bench's `--set` pairs: every path under .bench/dag, Airflow on its own port, DAGs
    that run only when triggered."""
    return [
        f"lakehouse_root={BENCH_DIR / 'lake'}",
        f"pipelines_dir={topic_dir}",
        f"mlflow.tracking_uri=sqlite:///{BENCH_DIR / 'mlflow.db'}",
        f"mlflow.artifact_root={BENCH_DIR / 'mlflow-artifacts'}",
        f"airflow.home={BENCH_DIR / 'airflow'}",
        f"airflow.port={PORT}",
        "airflow.scheduled=false",
    ]


def write_spec(folder: Path, topic: str) -> Path:
    """conf/pipelines/houses.yaml with the bench's topic and no retries (a failed task fails
    the run at once instead of after minutes of backoff)."""
    import yaml

    spec = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    spec["sources"]["kafka"][0]["topic"] = topic
    spec.setdefault("schedule", {})["retries"] = 0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "houses.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def stop_leftover(env: str) -> None:
    """A previous bench that died without stopping its Airflow left pid files in the home that
    is about to be wiped: stop those processes first (they would hold the port)."""
    from lakeloop.config import load_config, parse_set_pairs
    from lakeloop.orchestration import server

    home = BENCH_DIR / "airflow"
    if not any((home / f"{n}.pid").is_file() for n in server.PROCESSES):
        return
    cfg = load_config(env, parse_set_pairs(set_pairs(BENCH_DIR / "pipelines")), project_root=ROOT)
    stopped = server.down(cfg)["stopped"]
    if stopped:
        say(f"stopped the Airflow a previous bench left running: {stopped}")


def broker_up(cfg) -> bool:
    """Start the config's broker unless it answers; True when this bench started it."""
    from lakeloop import kafka_broker

    if kafka_broker.answers(cfg):
        return False
    say(f"kafka: starting the broker on {cfg.kafka.bootstrap_servers}")
    state = kafka_broker.up(cfg)
    if not state.get("answers"):
        raise BenchError(f"the Kafka broker does not answer: {state}")
    return True


def delete_topic(cfg, topic: str) -> None:
    from kafka import KafkaAdminClient

    from lakeloop.kafka_io import python_client_config

    try:
        admin = KafkaAdminClient(**python_client_config(cfg))
        try:
            if topic in admin.list_topics():
                admin.delete_topics([topic])
        finally:
            admin.close()
    except Exception as e:  # cleanup only: say so, keep the results
        say(f"kafka: could not delete the bench topic {topic}: {e}")


# --- CPU of the bench + its Airflow vs the rest of the machine --------------------------------


def _procs() -> dict[int, tuple[int, int, bytes]]:
    """pid -> (parent pid, CPU ticks incl. reaped children's, command line)."""
    return cpu_watch._procs(children=True)


def _tree(procs: dict[int, tuple[int, int, bytes]], roots: set[int]) -> set[int]:
    tree, grew = set(roots) & set(procs), True
    while grew:
        kids = {p for p, (pp, _, _) in procs.items() if pp in tree} - tree
        tree |= kids
        grew = bool(kids)
    return tree


def _busy() -> int:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(f) - f[3] - f[4]


class CpuSample:
    """CPU of this process and the Airflow process groups (their task processes and Spark JVMs
    counted through the parents' reaped-children times) vs the whole machine, over a block."""

    def __init__(self, roots: set[int]) -> None:
        self.roots = roots | {os.getpid()}
        self.t, self.busy = time.monotonic(), _busy()
        procs = _procs()
        self.ours = sum(procs[p][1] for p in _tree(procs, self.roots))
        self.others_jvms = self._jvms(procs)

    def _jvms(self, procs: dict[int, tuple[int, int, bytes]]) -> set[int]:
        mine = _tree(procs, self.roots)
        return {p for p, (_, _, c) in procs.items() if b"SparkSubmit" in c and p not in mine}

    def done(self) -> tuple[float, float, list[int]]:
        """(cores used by the bench + Airflow, cores used by everything else, other JVMs)."""
        wall = max(time.monotonic() - self.t, 1e-6)
        procs = _procs()
        ours = sum(procs[p][1] for p in _tree(procs, self.roots)) - self.ours
        tick = os.sysconf("SC_CLK_TCK")
        other = max(0.0, (_busy() - self.busy - ours) / tick / wall)
        return ours / tick / wall, other, sorted(self.others_jvms | self._jvms(procs))


# --- one timed DAG run -----------------------------------------------------------------------


def _ts(v: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None


@dataclass
class TaskTime:
    task: str
    state: str
    start: dt.datetime | None
    end: dt.datetime | None
    ti_s: float | None
    tries: int
    spark: bool
    body_s: float | None = None  # the job's duration_s from the run log

    @property
    def overhead_s(self) -> float | None:
        if self.ti_s is None or self.body_s is None:
            return None
        return self.ti_s - self.body_s


@dataclass
class DagRun:
    label: str
    day: dt.date
    rows: int
    run_id: str
    wall_s: float
    client_s: float
    tasks: dict[str, TaskTime]
    upstream: dict[str, tuple[str, ...]]
    cpu: tuple[float, float, list[int]]
    counts: dict[str, int] = field(default_factory=dict)
    retrain: bool = False

    def critical_path(self) -> list[str]:
        """From the task that ended last back to a root, each step to the upstream that ended
        last: the chain that set the run's length."""
        ran = {k: t for k, t in self.tasks.items() if t.end is not None}
        if not ran:
            return []
        name: str | None = max(ran, key=lambda k: ran[k].end)
        path = []
        while name is not None:
            path.append(name)
            ups = [u for u in self.upstream.get(name, ()) if u in ran]
            name = max(ups, key=lambda u: ran[u].end) if ups else None
        return path[::-1]

    def breakdown(self) -> dict[str, float]:
        """The run's wall time split along its critical path: job bodies, Spark task overhead,
        Python tasks and the scheduler's gaps (upstream end or run start → task start, last
        task end → run end)."""
        path = self.critical_path()
        bodies = sum(self.tasks[t].body_s or 0.0 for t in path if self.tasks[t].spark)
        spark_over = sum(self.tasks[t].overhead_s or 0.0 for t in path if self.tasks[t].spark)
        python = sum(self.tasks[t].ti_s or 0.0 for t in path if not self.tasks[t].spark)
        in_tasks = sum(self.tasks[t].ti_s or 0.0 for t in path)
        return {
            "bodies": bodies,
            "spark_overhead": spark_over,
            "python_tasks": python,
            "gaps": self.wall_s - in_tasks,
            "fixed": self.wall_s - bodies,
        }

    def spark_overheads(self) -> list[float]:
        return [t.overhead_s for t in self.tasks.values() if t.spark and t.overhead_s is not None]


def log_hint(home: Path, dag_id: str, run_id: str, task: str) -> str:
    """Where the failed task's log is, with its last error lines."""
    logs = sorted(
        (home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task}").glob("*"),
        key=lambda p: p.stat().st_mtime,
    )
    if not logs:
        return f"{task}: no log under {home / 'logs'}"
    text = logs[-1].read_text(errors="replace").splitlines()
    errors = [ln for ln in text if "ERROR" in ln or "failed" in ln.lower()][-3:]
    tail = "\n      ".join(ln[:400] for ln in (errors or text[-3:]))
    return f"{task}: {logs[-1]}\n      {tail}"


def run_day(
    ctx: Context, label: str, day: dt.date, rows: int, timeout: float, scored: bool = True
) -> DagRun:
    """Trigger the lifecycle DAG for `day`, wait for it, and read its task times. With
    `scored`, every task but the retrain trigger must have run (not skipped)."""
    from lakeloop.orchestration import plan, runs, summary

    api, pipeline = ctx.api, ctx.pipeline
    dag_id = plan.lifecycle_dag_id(pipeline.name)
    known = {r["dag_run_id"] for r in api.runs(plan.training_dag_id(pipeline.name))}
    sample = CpuSample(ctx.airflow_pids())
    t = time.monotonic()
    done = runs.trigger_day(api, pipeline, day, timeout)
    client_s = time.monotonic() - t
    cpu = sample.done()
    tis = api.task_instances(dag_id, done.run_id)
    if done.state != "success":
        failed = [ti["task_id"] for ti in tis if ti["state"] in ("failed", "upstream_failed")]
        hints = "\n    ".join(
            log_hint(ctx.home, dag_id, done.run_id, ti["task_id"])
            for ti in tis
            if ti["state"] == "failed"
        )
        raise BenchError(
            f"{dag_id} for {day} ({label}) {done.state}: failed tasks {', '.join(failed)}; "
            f"UI {api.url}/dags/{dag_id}; logs:\n    {hints}"
        )
    jobs = summary.latest_job_runs(pipeline)
    spark_tasks = {t.job: t for t in plan.lifecycle_tasks(pipeline.spec)}
    upstream = {job: t.upstream for job, t in spark_tasks.items()}
    last = plan.lifecycle_tasks(pipeline.spec)[-1].job
    upstream[plan.RETRAIN_TASK] = (last,)
    tasks: dict[str, TaskTime] = {}
    for ti in tis:
        name = ti["task_id"]
        job = spark_tasks.get(name)
        is_spark = job is not None and job.spark
        tt = TaskTime(
            name,
            ti["state"],
            _ts(ti.get("start_date")),
            _ts(ti.get("end_date")),
            ti.get("duration"),
            int(ti.get("try_number") or 1),
            is_spark,
        )
        if is_spark and tt.state == "success":
            rec = jobs.get((name, day))
            if rec is None or rec.status != "succeeded":
                raise BenchError(f"{name} ran for {day} but the run log has no succeeded run of it")
            tt.body_s = rec.duration_s
        tasks[name] = tt
    skipped = [k for k, v in tasks.items() if v.state == "skipped" and k != plan.RETRAIN_TASK]
    if skipped and scored:
        raise BenchError(
            f"{dag_id} for {day} skipped {', '.join(skipped)}: the model has no champion (the "
            "bootstrap's training did not promote one?)"
        )
    counts: dict[str, int] = {}
    for job in ("ingest_files", "ingest_kafka", "validate", "predict"):
        rec = jobs.get((job, day))
        counts.update({k: v for k, v in (rec.output if rec else {}).items() if "." not in k})
    retrain = tasks.get(plan.RETRAIN_TASK, None)
    run = DagRun(
        label,
        day,
        rows,
        done.run_id,
        done.seconds or client_s,
        client_s,
        tasks,
        upstream,
        cpu,
        counts,
        retrain is not None and retrain.state == "success",
    )
    ctx.known_training = known
    return run


# --- the bench -------------------------------------------------------------------------------


@dataclass
class Context:
    cfg: Any
    pipeline: Any
    api: Any
    home: Path
    known_training: set[str] = field(default_factory=set)

    def airflow_pids(self) -> set[int]:
        from lakeloop.orchestration import server

        return {p for p in server.status(self.cfg)["pids"].values() if p}


def generate(pipeline, day: dt.date, rows: int, history: int) -> None:
    from lakeloop.generate import houses as gen

    t = time.perf_counter()
    s = gen.generate(
        pipeline,
        start=day,
        days=1,
        rows_per_day=rows,
        malformed=MALFORMED,
        history=history,
        sale_days=SALE_DAYS,
    )
    say(
        f"data {day}: {s['listings']:,} listings, {s['produced']:,} sale events produced "
        f"(history {s['history_sales']:,} past sales) in {time.perf_counter() - t:.1f}s"
    )


def wait_training(ctx: Context, why: str, timeout: float) -> dict | None:
    """The training run a retrain event started (a run id not known before the day ran)."""
    from lakeloop.orchestration import plan

    dag_id = plan.training_dag_id(ctx.pipeline.name)
    t = time.monotonic()
    deadline = t + TRAINING_WAIT_S
    while time.monotonic() < deadline:
        new = [r for r in ctx.api.runs(dag_id) if r["dag_run_id"] not in ctx.known_training]
        if new:
            run = ctx.api.wait(dag_id, new[0]["dag_run_id"], timeout=timeout)
            if run["state"] != "success":
                tis = ctx.api.task_instances(dag_id, run["dag_run_id"])
                hints = "\n    ".join(
                    log_hint(ctx.home, dag_id, run["dag_run_id"], ti["task_id"])
                    for ti in tis
                    if ti["state"] == "failed"
                )
                raise BenchError(f"{dag_id} ({why}) {run['state']}; logs:\n    {hints}")
            say(f"training ({why}) done in {time.monotonic() - t:.0f}s")
            return run
        time.sleep(2)
    return None


def bootstrap(ctx: Context, args: argparse.Namespace) -> None:
    """D1 through the DAG (no champion: the retrain Asset starts the first training), waited
    for; then the champion must exist."""
    from lakeloop.ml import tracking

    generate(ctx.pipeline, D1, args.rows, args.history)
    say(f"bootstrap {D1}: lifecycle without a champion, then the Asset-triggered training")
    first = run_day(ctx, "bootstrap", D1, args.rows, args.timeout, scored=False)
    say(f"bootstrap lifecycle run: {first.wall_s:.0f}s")
    if not first.retrain:
        raise BenchError(f"the bootstrap run of {D1} emitted no retrain event")
    if wait_training(ctx, f"first model, as of {D1}", args.timeout) is None:
        raise BenchError(f"no training run started within {TRAINING_WAIT_S:.0f}s of {D1}'s event")
    model = ctx.pipeline.spec.model.name
    champion = tracking.by_alias(tracking.configure(ctx.cfg), model, tracking.CHAMPION)
    if champion is None:
        from lakeloop.orchestration import summary

        train = summary.latest_job_runs(ctx.pipeline).get(("train", D1))
        why = f"{train.details.get('decision')}: {train.details.get('reason')}" if train else "?"
        raise BenchError(
            f"the first training did not promote a champion of {model} ({why}); the timed runs "
            "would skip scoring: raise --history"
        )
    say(f"champion {model} v{champion.version}")


def measure(ctx: Context, args: argparse.Namespace) -> tuple[DagRun, DagRun]:
    small_day, large_day = D1 + dt.timedelta(days=1), D1 + dt.timedelta(days=2)
    generate(ctx.pipeline, small_day, args.rows, 0)
    say(f"small run {small_day}: {args.rows:,} listings")
    small = run_day(ctx, "small", small_day, args.rows, args.timeout)
    say(f"small run: {small.wall_s:.1f}s (client saw {small.client_s:.1f}s)")
    if small.retrain:  # a training run would compete with the large run: let it finish first
        say("the small day's monitor asked for retraining: waiting for it (untimed)")
        wait_training(ctx, f"retrain as of {small_day}", args.timeout)
    big = args.rows * GROWTH
    generate(ctx.pipeline, large_day, big, 0)
    say(f"large run {large_day}: {big:,} listings")
    large = run_day(ctx, "large", large_day, big, args.timeout)
    say(f"large run: {large.wall_s:.1f}s (client saw {large.client_s:.1f}s)")
    return small, large


# --- report ----------------------------------------------------------------------------------


def _f(v: float | None, w: int = 7) -> str:
    return f"{v:{w}.1f}" if v is not None else f"{'-':>{w}}"


def report(small: DagRun, large: DagRun) -> list[str]:
    order = list(small.tasks)
    order.sort(key=lambda k: small.tasks[k].start or dt.datetime.max.replace(tzinfo=dt.UTC))
    cp_s, cp_l = set(small.critical_path()), set(large.critical_path())
    lines = [
        "",
        f"{'task':<18} | {'small ' + format(small.rows, ','):>27} | "
        f"{'large ' + format(large.rows, ','):>27} | job",
        f"{'':<18} | {'TI s':>7} {'job s':>7} {'ovh s':>7}   | {'TI s':>7} {'job s':>7} "
        f"{'ovh s':>7}   | growth",
    ]
    for k in order:
        s, g = small.tasks[k], large.tasks.get(k)
        grow = (
            f"x{g.body_s / s.body_s:.2f}"
            if g and s.body_s and g.body_s is not None
            else "(python)"
            if not s.spark
            else "-"
        )
        mark_s = "*" if k in cp_s else " "
        mark_l = "*" if k in cp_l else " "
        lines.append(
            f"{k:<18} | {_f(s.ti_s)} {_f(s.body_s)} {_f(s.overhead_s)} {mark_s} | "
            f"{_f(g.ti_s if g else None)} {_f(g.body_s if g else None)} "
            f"{_f(g.overhead_s if g else None)} {mark_l} | {grow}"
        )
        if s.tries > 1 or (g and g.tries > 1):
            lines.append(f"{'':<18}   (retried: try {s.tries} / {g.tries if g else '-'})")
    bs, bl = small.breakdown(), large.breakdown()
    lines += [
        f"{'DAG run (wall)':<18} | {small.wall_s:7.1f} {'':>17} | {large.wall_s:7.1f} {'':>17} | "
        f"x{large.wall_s / small.wall_s:.2f}",
        "  (TI: the task instance's duration in Airflow; job: the job's own duration_s from the "
        "run log; ovh: TI - job = task start, spark-submit, JVM, imports, session, run-log row, "
        "stop; * on the critical path)",
        "",
    ]
    for run, b in ((small, bs), (large, bl)):
        lines.append(
            f"{run.label} run {run.day} ({run.rows:,} listings; rows out: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(run.counts.items()))
            + f"): wall {run.wall_s:.1f}s (client saw {run.client_s:.1f}s) = job bodies on the "
            f"critical path {b['bodies']:.1f}s + Spark task overhead {b['spark_overhead']:.1f}s "
            f"+ Python tasks {b['python_tasks']:.1f}s + scheduling gaps {b['gaps']:.1f}s"
        )
    return lines


def metrics(small: DagRun, large: DagRun) -> tuple[dict[str, float], list[str]]:
    bs, bl = small.breakdown(), large.breakdown()
    k = math.log(large.wall_s / small.wall_s) / math.log(GROWTH)
    over = small.spark_overheads()
    out = {
        "growth_exponent": k,
        "fixed_overhead_s": bs["fixed"],
        "task_overhead_s": sum(over) / len(over),
        "dag_run_s_small": small.wall_s,
        "dag_run_s_large": large.wall_s,
    }
    notes = []
    if bs["bodies"] > 0 and bl["bodies"] > 0:
        kb = math.log(bl["bodies"] / bs["bodies"]) / math.log(GROWTH)
        notes.append(
            f"job bodies on the critical path: {bs['bodies']:.1f}s -> {bl['bodies']:.1f}s, "
            f"exponent {kb:.2f} (the data-dependent work alone)"
        )
    intercept = (GROWTH * small.wall_s - large.wall_s) / (GROWTH - 1)
    notes.append(
        f"T = a + b * rows through the two runs: a = {intercept:.1f}s (size-independent), "
        f"b = {(large.wall_s - small.wall_s) / (large.rows - small.rows) * 1000:.3f}s per 1000 "
        "listings"
    )
    notes.append(
        f"large run's fixed overhead (wall - bodies on its critical path): {bl['fixed']:.1f}s; "
        f"mean Spark task overhead there {sum(large.spark_overheads()) / len(large.spark_overheads()):.1f}s"
    )
    for run in (small, large):
        ours, other, jvms = run.cpu
        msg = (
            f"cpu during the {run.label} run: bench + Airflow (tasks, JVMs) {ours:.2f} cores, "
            f"everything else {other:.2f} of {os.cpu_count()}"
        )
        if jvms:
            msg += f"; other Spark JVMs ran: {jvms}"
        if other > 0.25 or jvms:
            msg += " -> these timings are noisy"
        notes.append(msg)
    if large.retrain:
        notes.append(
            "the large day's monitor emitted a retrain event; its training run was not waited "
            "for (stopped with Airflow)"
        )
    return out, notes


def print_results(small: DagRun, large: DagRun, airflow_up_s: float) -> None:
    for line in report(small, large):
        print(line)
    values, notes = metrics(small, large)
    print()
    for name, goal in GOALS.items():
        verdict = "met" if values[name] <= goal else "NOT met"
        print(f"# {name}: goal <= {goal:g}, {verdict}")
    print(f"metric growth_exponent {values['growth_exponent']:.3f}")
    print(f"metric fixed_overhead_s {values['fixed_overhead_s']:.1f}")
    print(f"metric task_overhead_s {values['task_overhead_s']:.1f}")
    print(f"metric dag_run_s_small {values['dag_run_s_small']:.1f}")
    print(f"metric dag_run_s_large {values['dag_run_s_large']:.1f}")
    print(f"metric airflow_up_s {airflow_up_s:.1f}")
    for n in notes:
        print(f"# note: {n}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/dag.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"listings of the small day; the large day has {GROWTH}x ({DEFAULT_ROWS:,})",
    )
    p.add_argument(
        "--history",
        type=int,
        default=None,
        help="past sales on the bootstrap day, for the first model (default: --rows)",
    )
    p.add_argument("--env", default="test", help="config environment (its broker and Spark)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per DAG run")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    if args.rows < 100:
        p.error("--rows must be at least 100")
    args.history = args.rows if args.history is None else args.history
    if args.history < 300:
        p.error("--history must be at least 300 (the first model needs sales to train on)")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    return args


def run(args: argparse.Namespace) -> int:
    from lakeloop.config import load_config, parse_set_pairs
    from lakeloop.kafka_io import ensure_topic
    from lakeloop.orchestration import server
    from lakeloop.orchestration.api import AirflowApi
    from lakeloop.spec import load_pipeline

    stop_leftover(args.env)
    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    topic = f"bench.dag.{uuid.uuid4().hex[:8]}"
    spec_path = write_spec(BENCH_DIR / "pipelines", topic)
    pairs = set_pairs(spec_path.parent)
    cfg = load_config(args.env, parse_set_pairs(pairs), project_root=ROOT)
    pipeline = load_pipeline(cfg, str(spec_path))
    say(
        f"bench folder {BENCH_DIR}; env {args.env}, spark {cfg.spark.master}, driver memory "
        f"{cfg.spark.driver_memory}; rows {args.rows:,} and {args.rows * GROWTH:,}, history "
        f"{args.history:,}; topic {topic}; load avg {os.getloadavg()[0]:.1f}"
    )
    broker_up(cfg)
    ensure_topic(cfg, pipeline.spec.sources.kafka[0])
    try:
        t = time.monotonic()
        server.up(cfg, pairs)
        airflow_up_s = time.monotonic() - t
        say(f"airflow up at {server.base_url(cfg)} in {airflow_up_s:.1f}s")
        ctx = Context(cfg, pipeline, AirflowApi(cfg), server.home(cfg))
        bootstrap(ctx, args)
        small, large = measure(ctx, args)
    finally:
        t = time.monotonic()
        try:
            server.down(cfg)
            say(f"airflow stopped in {time.monotonic() - t:.1f}s")
        finally:
            delete_topic(cfg, topic)
    print_results(small, large, airflow_up_s)
    say(f"done; logs and tables kept in {BENCH_DIR} (wiped by the next run)")
    return 0


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM, and SIGINT even when started in the background (where the shell ignores it),
    # unwind through the `finally` that stops the bench's Airflow
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    timing.setup_logging(args.verbose)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    from lakeloop.config import ConfigError

    try:
        return run(args)
    except ConfigError as e:
        print(f"bench/dag.py: FAILED (config): {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"bench/dag.py: interrupted ({e}); its Airflow was stopped", file=sys.stderr)
        return 130
    except Exception as e:  # BenchError, AirflowError, BrokerError, ...: one message
        print(f"bench/dag.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        if args.verbose:
            raise
        return 1


if __name__ == "__main__":
    status = main()
    # delta-rs (the run log read) may abort the interpreter's exit ("terminate called without
    # an active exception", exit 134; delta-io/delta-rs#2184): everything is printed and
    # Airflow is stopped by now, so leave without the teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
