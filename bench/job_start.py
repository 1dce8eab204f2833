"""make bench-job-start: a lakeloop job's fixed cost under spark-submit, against a spark-submit
that only builds the same session and appends one row to Delta.

Everything lives in a fresh scratch folder under .bench/ (removed at the end unless --keep): a
lakehouse for the `houses` pipeline on the `test` config and a landing day of one listing
(`generate(..., rows_per_day=1, produce=False)`: one JSON record, a CSV with its header only).
The sides are real `spark-submit --master local[2]` processes (the venv's bin on PATH,
LAKELOOP_HOME the checkout, SPARK_LOCAL_IP=127.0.0.1), each run twice per round:

- `noop`: a script written into the scratch folder that loads the same config, builds the
  session with `lakeloop.session.build_spark(cfg)`, appends one row to a Delta table and stops.
- `job`: `jobs/ingest_files.py --pipeline houses --env test --set lakehouse_root=... --date D`
  on the one-row day (a re-run of the same date: the job replaces its partition, idempotent).

each with the config's driver JVM options (`--driver-java-options "<spark.driver_java_options>"`,
what lakeloop and the DAG's SparkSubmitOperator give the driver) and with none (JVM defaults).
One untimed warm-up run of each side (configured) first creates the tables and warms the OS
caches, so the timed runs are a daily job's steady state. The timed runs alternate in rounds
(`--runs`, default 3; odd rounds in reverse order), so load from elsewhere hits every side
alike; best of and median are reported, with each run's CPU (the spark-submit process tree) and
the cores everything else used meanwhile.

Breakdown of each run, from the times its output lines reached the bench (stdout and stderr of
the spark-submit merged, stamped on arrival):
  launcher  process start -> the first line of the JVM (spark-submit's scripts, find_spark_home's
            Python, the launcher JVM building the command)
  jvm       -> the driver's Python starts (SparkSubmit's JVM: class loading, Hadoop conf, jars).
            Seen through PYSPARK_DRIVER_PYTHON = a two-line sh wrapper that says so on stderr
            and execs the venv's python (a few ms; both sides pay it)
  python    -> the first log line of the script (imports + config loaded)
  session   -> lakeloop.session's `spark ... session ...` line (the job also loads its spec)
  work      -> the job's run-log line `run ... succeeded in Xs` / the noop's `appended 1 row`
  exit      -> the process has exited (Python exits, the JVM stops the SparkContext)

Checks (a failure exits non-zero): every run exits 0 and prints its markers; after each noop run
its Delta table holds exactly one row more; after each job run the bronze table holds the day's
rows (the same count every run). Tables are read without a JVM (delta-rs + pyarrow).

`--profile` adds, after the timed runs, one spark-submit of each side (configured) under
cProfile with Spark's event log on: lakeloop's functions by cumulative time, the time spent
waiting on the JVM (py4j), and the Spark jobs each side ran (count, summed time, the longest).

Printed: `ratio job_overhead_vs_noop_submit` (best noop / best job, both configured; goal
>= 0.7), `ratio short_jvm_start_speedup` (best job with JVM defaults / best job configured),
`metric job_submit_s` and `metric noop_submit_s` (best configured runs).

    .venv/bin/python bench/job_start.py [--runs N] [--rows N] [--profile] [--keep] [--timeout S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import timing
from cpu_watch import _busy_ticks
from timing import BenchError, Side, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
VENV_BIN = Path(sys.executable).parent
DAY = dt.date(2026, 1, 1)
ROWS = 1  # listings of the landing day (the generator's minimum); --rows changes it
GOALS = {"job_overhead_vs_noop_submit": 0.7}
RATIOS = ["job_overhead_vs_noop_submit", "short_jvm_start_speedup"]  # the second: no goal
PHASES = ("launcher", "jvm", "python", "session", "work", "exit")
DRIVER_MARK = "bench-job-start: driver python starts"
NOOP_TABLE = "bench/noop_appends"  # under the lakehouse root

# markers in a side's output: (phase that ends at the first line matching it, regex)
MARKS = {
    "python": re.escape(DRIVER_MARK),
    "config": r" INFO (lakeloop\.jobs\.common: \w+|bench\.noop: noop) config: ",
    "session": r" INFO lakeloop\.session: spark \S+ session ",
    "job_done": r" INFO lakeloop\.runlog: run \w+ succeeded in (?P<body>[\d.]+)s",
    "noop_done": r" INFO bench\.noop: appended 1 row in (?P<body>[\d.]+)s",
}

PY_WRAPPER = f"""#!/bin/sh
# the driver's Python as spark-submit starts it, saying when (find_spark_home.py runs it too)
case "$1" in *find_spark_home.py) ;; *) echo "{DRIVER_MARK}" >&2 ;; esac
exec {shlex.quote(sys.executable)} "$@"
"""

NOOP_SCRIPT = '''"""The noop side: the same config and session as a lakeloop job, one row appended to Delta."""

import datetime as dt
import json
import logging
import sys
import time

from lakeloop import logs
from lakeloop.config import load_config
from lakeloop.session import build_spark

log = logging.getLogger("bench.noop")


def main(argv: list[str]) -> int:
    root, table, run = argv[0], argv[1], int(argv[2])
    logs.configure()
    cfg = load_config("test", {"lakehouse_root": root})
    log.info("noop config: %s", json.dumps(cfg.redacted(), default=str))
    spark = build_spark(cfg, app_name="lakeloop-bench-noop")
    t = time.monotonic()
    row = [(run, dt.datetime.now(dt.UTC), "noop")]
    df = spark.createDataFrame(row, "run int, at timestamp, note string")
    df.write.format("delta").mode("append").save(table)
    log.info("appended 1 row in %.1fs", time.monotonic() - t)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

PROFILE_SCRIPT = '''"""A side under cProfile: lakeloop's functions by cumulative time, py4j waits."""

import cProfile
import io
import pstats
import runpy
import sys

out, target, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.argv = [target, *args]
prof = cProfile.Profile()
code = 0
prof.enable()
try:
    runpy.run_path(target, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
finally:
    prof.disable()
    prof.dump_stats(out)
sys.exit(code)
'''


# --- one spark-submit ------------------------------------------------------------------------


@dataclass
class Run:
    """One spark-submit: its output lines with arrival times (s since the start), exit code,
    wall and CPU seconds, the cores everything else used meanwhile, its phases."""

    side: str
    lines: list[tuple[float, str]] = field(default_factory=list)
    rc: int | None = None
    wall: float = 0.0
    cpu: float = 0.0
    other_cores: float = 0.0
    body_s: float | None = None  # the job's own time (run log) / the noop's append
    phases: dict[str, float] = field(default_factory=dict)

    def first(self, pattern: str) -> tuple[float, re.Match] | None:
        rx = re.compile(pattern)
        for t, line in self.lines:
            m = rx.search(line)
            if m:
                return t, m
        return None

    def tail(self, n: int = 25) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


def submit(cmd: list[str], env: dict[str, str], cwd: Path, side: str, timeout: float) -> Run:
    """Run `cmd` (its own process group), stamping each output line as it arrives."""
    run = Run(side)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = _busy_ticks()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.lines.append((time.monotonic() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run.rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the process group this Popen started
        proc.wait()
        reader.join(5)
        raise BenchError(
            f"{side}: no exit after {timeout:.0f}s (killed); last output:\n{run.tail()}"
        ) from None
    run.wall = time.monotonic() - t0
    reader.join(10)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy = (_busy_ticks() - busy0) / os.sysconf("SC_CLK_TCK")
    run.other_cores = max(0.0, (busy - run.cpu) / run.wall)
    return run


def breakdown(run: Run, done_mark: str) -> None:
    """Fill run.phases (see the module docstring) and run.body_s; BenchError if a marker is
    missing (the side did not do what it should)."""
    jvm_lines = [t for t, line in run.lines if DRIVER_MARK not in line]
    stamps: dict[str, float] = {"start": 0.0}
    if not jvm_lines:
        raise BenchError(f"{run.side}: no output at all")
    stamps["launcher"] = jvm_lines[0]
    for phase, mark in (
        ("jvm", "python"),
        ("python", "config"),
        ("session", "session"),
        ("work", done_mark),
    ):
        hit = run.first(MARKS[mark])
        if hit is None:
            raise BenchError(
                f"{run.side}: no line matching {MARKS[mark]!r} in its output; last lines:\n"
                f"{run.tail()}"
            )
        stamps[phase] = hit[0]
        if phase == "work":
            run.body_s = float(hit[1]["body"])
    stamps["exit"] = run.wall
    # the JVM's first line can come after the driver's start marker when it has nothing to say
    stamps["launcher"] = min(stamps["launcher"], stamps["jvm"])
    prev = 0.0
    for phase in PHASES:
        run.phases[phase] = max(0.0, stamps[phase] - prev)
        prev = max(prev, stamps[phase])


# --- the bench -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from lakeloop.config import load_config
        from lakeloop.generate.houses import generate
        from lakeloop.spec import load_pipeline

        self.args, self.scratch = args, scratch
        self.lake = scratch / "lake"
        cfg = load_config("test", {"lakehouse_root": str(self.lake)}, project_root=ROOT)
        self.cfg = cfg
        self.pipeline = load_pipeline(cfg, "houses")
        rows = args.rows
        counts = generate(self.pipeline, start=DAY, days=1, rows_per_day=rows, produce=False)
        if counts["listings"] != rows:
            raise BenchError(f"the generator wrote {counts['listings']} listings, not {rows}")
        self.rows = rows
        self.options = cfg.spark.driver_java_options
        if not self.options:
            raise BenchError("spark.driver_java_options is empty in the config: nothing to compare")
        self.bronze = self.pipeline.table_path("bronze_listings")
        self.noop_table = str(self.lake / NOOP_TABLE)
        self.noop_rows = 0
        self.noop_runs = 0
        wrapper = scratch / "driver-python.sh"
        wrapper.write_text(PY_WRAPPER)
        wrapper.chmod(0o755)
        (scratch / "noop.py").write_text(NOOP_SCRIPT)
        (scratch / "profiled.py").write_text(PROFILE_SCRIPT)
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            "LAKELOOP_HOME": str(ROOT),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_DRIVER_PYTHON": str(wrapper),
            "PYTHONUNBUFFERED": "1",
        }
        for var in ("SPARK_HOME", "PYSPARK_GATEWAY_PORT", "LAKELOOP_LOG_LEVEL", "LAKELOOP_ENV"):
            self.env.pop(var, None)

    # the commands

    def command(
        self, side: str, configured: bool, extra: list[str], app: list[str] | None
    ) -> list[str]:
        cmd = ["spark-submit", "--master", "local[2]"]
        if configured:
            cmd += ["--driver-java-options", self.options]
        cmd += extra
        if side == "noop":
            cmd += [*(app or []), str(self.scratch / "noop.py"), str(self.lake)]
            cmd += [self.noop_table, str(self.noop_runs)]
        else:
            cmd += [*(app or []), str(ROOT / "jobs/ingest_files.py"), "--pipeline", "houses"]
            cmd += ["--env", "test", "--set", f"lakehouse_root={self.lake}", "--date", str(DAY)]
        return cmd

    def run(
        self,
        side: str,
        configured: bool,
        label: str,
        extra: list[str] | None = None,
        app: list[str] | None = None,
    ) -> Run:
        cmd = self.command(side, configured, extra or [], app)
        run = submit(cmd, self.env, self.scratch, label, self.args.timeout)
        (self.scratch / "logs").mkdir(exist_ok=True)
        log_name = f"{label.replace(' ', '_')}-{uuid.uuid4().hex[:6]}.log"
        (self.scratch / "logs" / log_name).write_text(
            f"$ {shlex.join(cmd)}\n" + "\n".join(f"{t:8.2f} {line}" for t, line in run.lines)
        )
        if run.rc != 0:
            raise BenchError(f"{label}: spark-submit exited {run.rc}; last lines:\n{run.tail()}")
        breakdown(run, "noop_done" if side == "noop" else "job_done")
        self.check(side, label)
        return run

    # keeping the sides honest

    def check(self, side: str, label: str) -> None:
        from lakeloop.orchestration.tables import dataset

        if side == "noop":
            self.noop_runs += 1
            n = dataset(self.noop_table).count_rows()
            if n != self.noop_rows + 1:
                raise BenchError(
                    f"{label}: the noop table holds {n} rows after the run, expected "
                    f"{self.noop_rows + 1} (one more than before)"
                )
            self.noop_rows = n
        else:
            n = dataset(self.bronze).count_rows()
            if n != self.rows:
                raise BenchError(
                    f"{label}: bronze_listings holds {n} rows after the run, expected the "
                    f"day's {self.rows}"
                )

    # the timed rounds

    def measure(self, notes: list[str]) -> dict[tuple[str, bool], tuple[Side, list[Run]]]:
        for side in ("noop", "job"):
            t = time.monotonic()
            self.run(side, True, f"{side} warm-up")
            say(f"warm-up {side} (configured): {time.monotonic() - t:.1f}s")
        variants = [("noop", True), ("job", True), ("noop", False), ("job", False)]
        out = {v: (Side(name(*v), self.rows), []) for v in variants}
        rounds = self.args.runs
        for rep in range(rounds):
            order = variants if rep % 2 == 0 else list(reversed(variants))
            for side, configured in order:
                s, runs = out[(side, configured)]
                run = self.run(side, configured, s.name)
                s.times.append(run.wall)
                s.cpu.append(run.cpu)
                s.phases.append(run.phases)
                runs.append(run)
                say(
                    f"  round {rep + 1}/{rounds} {s.name}: {run.wall:.1f}s ({run.cpu:.1f} CPU s; "
                    f"body {run.body_s:.1f}s; everything else used {run.other_cores:.2f} cores)"
                )
        others = [r.other_cores for _, runs in out.values() for r in runs]
        mean_other = statistics.mean(others)
        if mean_other > 0.25:
            notes.append(
                f"noisy machine: everything else used {mean_other:.2f} cores on average "
                f"(max {max(others):.2f}) of {os.cpu_count()} during the timed runs; the rounds "
                "alternate, so every side saw it alike"
            )
        return out

    # the profile

    def profile(self) -> list[str]:
        lines: list[str] = []
        for side in ("noop", "job"):
            stats = self.scratch / f"{side}.prof"
            events = self.scratch / f"events-{side}"
            events.mkdir(exist_ok=True)
            extra = [
                "--conf",
                "spark.eventLog.enabled=true",
                "--conf",
                f"spark.eventLog.dir=file://{events}",
                "--conf",
                "spark.eventLog.compress=false",
            ]
            app = [str(self.scratch / "profiled.py"), str(stats)]
            run = self.run(side, True, f"{side} profiled", extra, app)
            lines.append(
                f"{side} (configured) under cProfile + event log: {run.wall:.1f}s, "
                + ", ".join(f"{p} {run.phases[p]:.1f}" for p in PHASES)
            )
            lines += profile_lines(stats)
            lines += event_log_lines(events)
        return lines


def name(side: str, configured: bool) -> str:
    return f"{side:<4}  " + ("configured JVM options" if configured else "JVM defaults")


def profile_lines(stats_path: Path, top: int = 14) -> list[str]:
    """lakeloop's functions by cumulative time (those >= 0.2 s), and the py4j waits."""
    import pstats

    st = pstats.Stats(str(stats_path))
    raw = st.stats  # type: ignore[attr-defined]
    rows = []
    wait = 0.0
    for (file, line, func), (_, calls, _, cum, _) in raw.items():
        if "/lakeloop/" in file:
            rows.append((cum, calls, f"{file.split('/lakeloop/')[-1]}:{line} {func}"))
        if file.endswith("clientserver.py") and func == "send_command":
            wait += cum
    rows.sort(reverse=True)
    out = [f"  py4j send_command (Python waiting on the JVM): {wait:.2f}s in all"]
    for cum, calls, where in rows[:top]:
        if cum < 0.2:
            break
        out.append(f"  {cum:7.2f}s {calls:5d}x  {where}")
    return out


def event_log_lines(folder: Path, top: int = 12) -> list[str]:
    """The SQL executions of the event log under `folder` (Spark 4 rolls it into
    `eventlog_v2_*/events_<n>_*`): start after the application's, duration, Spark jobs and
    their summed time, description; nested ones (Delta's own inside a write) indented."""
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.name.startswith(("events_", "local-"))),
        key=lambda p: (len(p.name), p.name),
    )
    if not files:
        return ["  (no event log written)"]
    app0 = 0
    execs: dict[int, dict] = {}
    job_start: dict[int, tuple[int, int | None]] = {}
    jobs_total = [0, 0.0]
    for f in files:
        for line in f.read_text().splitlines():
            ev = json.loads(line)
            kind = ev.get("Event", "")
            if kind == "SparkListenerApplicationStart":
                app0 = ev["Timestamp"]
            elif kind.endswith("SQLExecutionStart"):
                execs[ev["executionId"]] = {
                    "start": ev["time"],
                    "what": ev.get("description", "?"),
                    "root": ev.get("rootExecutionId", ev["executionId"]),
                    "jobs": 0,
                    "job_s": 0.0,
                }
            elif kind.endswith("SQLExecutionEnd") and ev["executionId"] in execs:
                execs[ev["executionId"]]["end"] = ev["time"]
            elif kind == "SparkListenerJobStart":
                sql = (ev.get("Properties") or {}).get("spark.sql.execution.id")
                job_start[ev["Job ID"]] = (ev["Submission Time"], int(sql) if sql else None)
            elif kind == "SparkListenerJobEnd" and ev["Job ID"] in job_start:
                t0, sql = job_start[ev["Job ID"]]
                secs = (ev["Completion Time"] - t0) / 1000
                jobs_total[0] += 1
                jobs_total[1] += secs
                if sql in execs:
                    execs[sql]["jobs"] += 1
                    execs[sql]["job_s"] += secs
    out = [
        f"  Spark: {len(execs)} SQL executions, {jobs_total[0]} Spark jobs ({jobs_total[1]:.2f}s "
        "summed); the executions, from the application's start:"
    ]
    for i, (eid, e) in enumerate(sorted(execs.items(), key=lambda kv: kv[1]["start"])):
        if i == top:
            out.append(f"    ... {len(execs) - top} more")
            break
        dur = (e["end"] - e["start"]) / 1000 if "end" in e else float("nan")
        indent = "  " if e["root"] != eid else ""
        out.append(
            f"    +{(e['start'] - app0) / 1000:6.2f}s {dur:6.2f}s  {e['jobs']} jobs "
            f"{e['job_s']:5.2f}s  {indent}{e['what'][:90]}"
        )
    return out


# --- report ----------------------------------------------------------------------------------


def print_breakdown(out: dict[tuple[str, bool], tuple[Side, list[Run]]]) -> None:
    w = 34
    head = " ".join(f"{p:>8}" for p in (*PHASES, "total", "body"))
    print()
    print(f"{'breakdown (s): median of the runs':<{w}} {head}")
    for (_side, _configured), (s, runs) in out.items():
        med = {p: statistics.median(r.phases[p] for r in runs) for p in PHASES}
        med_total = statistics.median(r.wall for r in runs)
        med_body = statistics.median(r.body_s or 0.0 for r in runs)
        cells = " ".join(f"{med[p]:8.2f}" for p in PHASES)
        print(f"{s.name:<{w}} {cells} {med_total:8.2f} {med_body:8.2f}")
        best = runs[s.times.index(s.best)]
        cells = " ".join(f"{best.phases[p]:8.2f}" for p in PHASES)
        print(f"{'  best run':<{w}} {cells} {best.wall:8.2f} {best.body_s or 0.0:8.2f}")
    print(
        "  (launcher: spark-submit's scripts + launcher JVM; jvm: SparkSubmit up to the driver's "
        "Python; python: imports + config; session: [spec +] SparkSession; work: to the run "
        "log's `succeeded` / the noop's append; exit: Python exit + SparkContext stop; body: "
        "the job's run-log duration / the noop's append)"
    )


def report(out, ratios: dict[str, float | None], notes: list[str], profile: list[str]) -> None:
    sides = [s for s, _ in out.values()]
    print()
    print(f"{'side':<34} {'best s':>7} {'median s':>8} {'cpu s':>6}  runs (s)")
    for s in sides:
        runs = ", ".join(f"{t:.2f}" for t in s.times)
        print(f"{s.name:<34} {s.best:7.2f} {s.median:8.2f} {s.best_cpu:6.1f}  {runs}")
    print("  (each a spark-submit, local[2]; cpu s: the least CPU seconds of its process tree)")
    print_breakdown(out)
    if profile:
        print()
        for line in profile:
            print(line)
    print()
    for k, v in ratios.items():
        if v is None:
            print(f"# {k}: not measured")
        elif k not in GOALS:
            print(f"# {k}: for reference (no goal)")
        else:
            print(f"# {k}: goal >= {GOALS[k]:g}, {'met' if v >= GOALS[k] else 'NOT met'}")
    for k, v in ratios.items():
        if v is not None:
            print(f"ratio {k} {v:.2f}")
    best = {(side, c): s.best for (side, c), (s, _) in out.items()}
    print(f"metric job_submit_s {best[('job', True)]:.1f}")
    print(f"metric noop_submit_s {best[('noop', True)]:.1f}")
    for n in notes:
        print(f"# note: {n}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/job_start.py", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="timed rounds (each side twice per round)")
    p.add_argument(
        "--rows", type=int, default=ROWS, help="listings of the job's day (1: the fixed cost)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="then one run of each side under cProfile with Spark's event log (2 more submits)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per spark-submit")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    if args.runs < 1 or args.rows < 1:
        p.error("--runs and --rows must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    scratch = BENCH_ROOT / f"job_start-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir(parents=True)
    res = timing.Results()
    try:
        bench = Bench(args, scratch)
        say(
            f"scratch {scratch}; {bench.rows} listing(s) on {DAY}; --runs {args.runs}; configured "
            f"driver options: {bench.options!r}; load avg {os.getloadavg()[0]:.1f}"
        )
        out = res.part("timed runs", lambda: bench.measure(res.notes))
        profile = (res.part("profile", bench.profile) or []) if out and args.profile else []
    except BenchError as e:
        res.failed.append(str(e))
        say(f"FAILED: {e}")
        out, profile = None, []
    finally:
        if args.keep:
            say(f"scratch kept in {scratch} (logs/ holds every run's output)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    if out:
        best = {k: s.best for k, (s, _) in out.items()}
        res.sides = [s for s, _ in out.values()]
        res.ratios["job_overhead_vs_noop_submit"] = best[("noop", True)] / best[("job", True)]
        res.ratios["short_jvm_start_speedup"] = best[("job", False)] / best[("job", True)]
        res.notes.append(
            f"noop with JVM defaults / configured: {best[('noop', False)] / best[('noop', True)]:.2f}"
        )
    wanted = RATIOS
    return res.finish(wanted, lambda _s, ratios, notes: report(out, ratios, notes, profile))


if __name__ == "__main__":
    sys.exit(main())
