"""What the benches share: the progress log (`say`), the sides being timed and their alternating
timed runs (wall s, CPU s, Spark jobs, named phases), the Spark session and scratch folder, the
parts' results and failures, and the report (results table, goals, `ratio <name> <value>` lines,
which scripts parse). The benches run as scripts (`python bench/<name>.py`), so this is imported
as `from timing import ...` / `import timing`, like cpu_watch."""

from __future__ import annotations

import logging
import shutil
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from cpu_watch import cpu_seconds

T = TypeVar("T")
T0 = time.perf_counter()
PHASES: dict[str, float] = {}  # filled by a side during a timed run, taken by timed_run
_PHASE_LOCK = threading.Lock()
SPARK_CPU_NOTE = (
    "  (best of the timed runs counts; jobs: Spark jobs in the best run; cpu s: the least "
    "CPU seconds of this process + its Spark JVM over the runs)"
)


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


class BenchError(RuntimeError):
    pass


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


@contextmanager
def spark_session(cfg, app_name: str, scratch: Path, keep: bool) -> Iterator:
    """The bench's Spark session (`build_spark(cfg)`); at the end it is stopped and the scratch
    folder removed (or, with `keep`, kept and said so)."""
    from lakeloop.session import build_spark

    t = time.perf_counter()
    spark = build_spark(cfg, app_name=app_name)
    say(f"spark {spark.version} session up in {time.perf_counter() - t:.1f}s")
    try:
        yield spark
    finally:
        spark.stop()
        if keep:
            say(f"scratch data kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


# --- timing ----------------------------------------------------------------------------------


class Side:
    """One contender: its timed runs (wall s, CPU s, Spark jobs, named phases, Spark stages).
    `best_cpu` is the least CPU s over the runs, or with `cpu_of_best_run` the best run's."""

    def __init__(self, name: str, rows: int, cpu_of_best_run: bool = False) -> None:
        self.name, self.rows = name, rows
        self.cpu_of_best_run = cpu_of_best_run
        self.times: list[float] = []
        self.cpu: list[float] = []  # CPU seconds of this process, its JVM (and `also`)
        self.jobs: list[int] = []
        self.phases: list[dict[str, float]] = []  # named parts of each run (see PHASES)
        self.stages: list[dict[str, tuple[int, float]]] = []  # Spark stages of each run

    def best_of(self, per_run: list) -> object:
        return per_run[self.times.index(self.best)] if len(per_run) == len(self.times) else None

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def rate(self) -> float:
        return self.rows / self.best

    @property
    def best_cpu(self) -> float:
        if self.cpu_of_best_run:
            return self.cpu[self.times.index(self.best)]
        return min(self.cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def phase_text(self) -> str:
        """The best run's named phases, `name 1.23s, ...` ("" if none were recorded)."""
        return ", ".join(f"{k} {v:.2f}s" for k, v in (self.best_of(self.phases) or {}).items())


def add_phase(label: str, seconds: float) -> None:
    with _PHASE_LOCK:
        PHASES[label] = PHASES.get(label, 0.0) + seconds


def timed_run(
    side: Side,
    fn: Callable[[int], object],
    rep: int,
    total: int,
    *,
    spark=None,
    also: tuple[int, ...] = (),
    stages: bool = False,
    phases: bool = True,
) -> object:
    """Run fn(rep) once; record wall s and the CPU s of this process tree and `also` (CPU is
    less swayed by neighbours). With `spark`, under its own Spark job group, also recording
    its Spark jobs (and with `stages` its Spark stages); with `phases`, what fn put in PHASES."""
    sc = spark.sparkContext if spark is not None else None
    group = ""
    if sc is not None:
        group = f"bench-{uuid.uuid4().hex[:8]}"
        sc.setJobGroup(group, side.name)
    if phases:
        PHASES.clear()
    cpu, t = cpu_seconds(also), time.perf_counter()
    try:
        out = fn(rep)
    finally:
        elapsed = time.perf_counter() - t
        if sc is not None:
            sc.setLocalProperty("spark.jobGroup.id", None)
    side.times.append(elapsed)
    side.cpu.append(cpu_seconds(also) - cpu)
    jobs = ""
    if sc is not None:
        side.jobs.append(len(sc.statusTracker().getJobIdsForGroup(group)))
        jobs = f", {side.jobs[-1]} Spark jobs"
        if stages:
            side.stages.append(stage_times(sc, group))
    if phases:
        side.phases.append(dict(PHASES))
        PHASES.clear()
    say(
        f"  run {rep + 1}/{total} {side.name}: {elapsed:.2f}s ({side.rows / elapsed:,.0f} rows/s, "
        f"{side.cpu[-1]:.1f} CPU s{jobs})"
    )
    return out


def stage_times(sc, group: str) -> dict[str, tuple[int, float]]:
    """Spark stage call site -> (stages, wall seconds from submission to completion) over the
    jobs of `group`, from the driver's status store (diagnostic only: {} if unavailable)."""
    out: dict[str, tuple[int, float]] = {}
    try:
        store = sc._jsc.sc().statusStore()
        for job in sc.statusTracker().getJobIdsForGroup(group):
            info = sc.statusTracker().getJobInfo(job)
            for stage in info.stageIds if info else []:
                data = store.lastStageAttempt(stage)
                sub, done = data.submissionTime(), data.completionTime()
                if not (sub.isDefined() and done.isDefined()):
                    continue  # skipped (its input was already computed)
                wall = (done.get().getTime() - sub.get().getTime()) / 1000
                n, t = out.get(data.name(), (0, 0.0))
                out[data.name()] = (n + 1, t + wall)
    except Exception:  # a private API of the JVM side; the numbers are extras
        return {}
    return out


def alternate(
    repeats: int, runs: list[tuple[Side, Callable[[int], object]]], **timed_run_kw
) -> list:
    """Every side `repeats` times (fn gets the round); odd rounds go in reverse order. Returns
    the last outputs. `timed_run_kw` goes to timed_run (spark, also, stages, phases)."""
    last: list = [None] * len(runs)
    for rep in range(repeats):
        order = list(enumerate(runs))
        if rep % 2:
            order.reverse()
        for i, (side, fn) in order:
            last[i] = timed_run(side, fn, rep, repeats, **timed_run_kw)
    return last


def replace_day(df, path: str, column: str, day, properties: dict[str, str]) -> None:
    """`df` + `column` = `day` written as lakeloop writes a day, in its least form: a Delta
    table partitioned by `column`, that day replaced (the floors of the benches)."""
    from pyspark.sql import functions as F

    (
        df.withColumn(column, F.lit(day))
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} = '{day.isoformat()}'")
        .options(**properties)
        .partitionBy(column)
        .save(path)
    )


def floor_text(base_s: float, floor: Side, goal: float, what: str, out_of_reach: str) -> str:
    """What a floor side (the least work any implementation must do: `what`) says of a goal:
    the baseline's time `base_s` over the floor's is the best ratio any implementation can
    reach."""
    value = base_s / floor.best
    verdict = "reachable" if value >= goal else out_of_reach
    return f"floor: {what}: {floor.best:.2f}s; best possible ratio {value:.2f} (goal {goal}: {verdict})"


# --- results and report ----------------------------------------------------------------------


class Results:
    """What the bench's parts gave (sides, ratios, notes) and which parts failed."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.sides: list[Side] = []
        self.ratios: dict[str, float | None] = {}
        self.failed: list[str] = []

    def part(self, name: str, fn: Callable[[], T], trace_bench_errors: bool = False) -> T | None:
        """fn(), or None when it raises: then the part is failed, said, and its traceback
        printed (for a BenchError, the bench's own check, only with `trace_bench_errors`)."""
        try:
            return fn()
        except Exception as e:
            self.failed.append(f"{name}: {e}")
            say(f"{name}: FAILED: {e}")
            if trace_bench_errors or not isinstance(e, BenchError):
                traceback.print_exc()
            return None

    def finish(
        self,
        wanted: list[str],
        report: Callable[[list[Side], dict[str, float | None], list[str]], None],
    ) -> int:
        """Report the `wanted` ratios (if any side ran), say the total time, list the failed
        parts on stderr; the exit status."""
        if self.sides:
            report(self.sides, {k: self.ratios.get(k) for k in wanted}, self.notes)
        say(f"done in {time.perf_counter() - T0:.1f}s")
        for f in self.failed:
            print(f"FAILED {f}", file=sys.stderr)
        return 1 if self.failed else 0


def best_run_lines(s: Side) -> list[str]:
    """The named phases and the longest Spark stages of the side's best run (if recorded)."""
    label = s.name.split(":")[0].strip()
    out = []
    ph = s.best_of(s.phases)
    if ph:
        out.append(f"  {label} best run {s.best:.2f}s, of which: {s.phase_text()}")
    st = s.best_of(s.stages)
    if st:
        top = sorted(st.items(), key=lambda kv: -kv[1][1])[:4]
        parts = "; ".join(
            f"{name} {t:.2f}s" + (f" ({n} stages)" if n > 1 else "") for name, (n, t) in top
        )
        more = f" (+{len(st) - len(top)} more)" if len(st) > len(top) else ""
        out.append(f"  {label} best run, longest Spark stages: {parts}{more}")
    return out


def print_report(
    sides: list[Side],
    ratios: dict[str, float | None],
    goals: dict[str, float],
    notes: list[str],
    *,
    secondary: Iterable[str] = (),
    cpu_note: str = SPARK_CPU_NOTE,
    side_lines: Callable[[Side], list[str]] = best_run_lines,
    name_width: int = 44,
    median: bool = True,
    jobs_width: int | None = 4,
) -> None:
    """The results table (side, rows, best s, [median s], rows/s, [jobs in the best run],
    cpu s, runs), `cpu_note`, each side's `side_lines`; then each ratio against its goal, the
    `secondary` comment lines, one `ratio <name> <value>` line per measured ratio, the notes."""
    cols: list[tuple[str, int, Callable[[Side], str]]] = [
        ("rows", 10, lambda s: f"{s.rows:,}"),
        ("best s", 7, lambda s: f"{s.best:.2f}"),
    ]
    if median:
        cols.append(("median s", 8, lambda s: f"{s.median:.2f}"))
    cols.append(("rows/s", 10, lambda s: f"{s.rate:,.0f}"))
    if jobs_width is not None:
        cols.append(("jobs", jobs_width, lambda s: f"{s.jobs[s.times.index(s.best)]}"))
    cols.append(("cpu s", 6, lambda s: f"{s.best_cpu:.1f}"))
    print()
    print(f"{'side':<{name_width}} " + " ".join(f"{h:>{w}}" for h, w, _ in cols) + "  runs (s)")
    for s in sides:
        runs = ", ".join(f"{t:.2f}" for t in s.times)
        cells = " ".join(f"{v(s):>{w}}" for _, w, v in cols)
        print(f"{s.name:<{name_width}} {cells}  {runs}")
    print(cpu_note)
    for s in sides:
        for line in side_lines(s):
            print(line)
    print()
    for name, value in ratios.items():
        if value is None:
            print(f"# {name}: not measured")
            continue
        if name not in goals:
            print(f"# {name}: a reference, no goal")
            continue
        verdict = "met" if value >= goals[name] else "NOT met"
        print(f"# {name}: goal >= {goals[name]:g}, {verdict}")
    for line in secondary:
        print(line)
    for name, value in ratios.items():
        if value is not None:
            print(f"ratio {name} {value:.2f}")
    for n in notes:
        print(f"# note: {n}")
