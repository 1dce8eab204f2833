"""make bench-scaling: how each stage's time grows with the rows, the houses chain at 1x, 4x and
16x a base size, fitted per stage to t = a + b * rows^k.

For each factor f of `--factors` (1,4,16), the houses example is generated untimed at f x
`--rows` listings a day for `--days` days (1), plus the generator's backlog of f x `--rows`
past sales and their listings on the first day (no faults): one day's listings and the backlog
give the spec's training window (its 10 test days included); `--days 3` adds the cross-day
work (validate's dedup against the silver of earlier days) at a fixed cost per day. The files
are written once into a folder of the factor's, its sales produced once to a Kafka topic of its
own (the project's broker, started with `lakeloop.kafka_broker.up` if it is not running and
stopped at the end; the topics are deleted). Every run of a factor starts from a fresh
lakehouse and MLflow store in a folder of its own under .bench/ (the landing files copied in,
the MLflow store created, both untimed) and runs the jobs' own `run()`s in this process, one
SparkSession (`lakeloop.session.build_spark`, config env `dev`, the full JIT of a long-lived
driver):

    ingest        ingest_files for each day + ingest_kafka (all the sales) as of the last day
    validate      validate for each day
    features      build_features.backfill over the days
    training_set  build_training_set as of the last day + 60 (every sale has happened): a
                  stage of its own (the point-in-time join of the labels with the features)
    train         train as of that day (CV over the spec's grid, MLflow, gate, parity, profile)
    predict       predict the last day (the champion just trained)

Each stage is timed on its own (wall s, CPU s of this process + its Spark JVM + the broker, and
its Spark jobs from the status tracker under a job group). Every output is checked against
what the generated input implies (bronze = the listings and sales generated, none malformed
or dead-lettered; silver + quarantine = bronze; features = silver listings; the training set =
the sales; train + test rows = the labels with features; predictions = the last day's
listings, none unscored; the first model promoted): a mismatch fails the bench (BenchError,
exit 1). An untimed warm-up chain at the 1x data comes first (`--no-warmup` skips it), so no
size pays the JVM's class loading and JIT; then with `--repeats` 2 the sizes run 1, 4, 16 and
16, 4, 1, and a stage's best time per size counts.

The fit (`fit_power`): three sizes, three unknowns, solved exactly; k from the ratio of the
time increments (t3 - t2) / (t2 - t1) = (x3^k - x2^k) / (x2^k - x1^k) (4^k for 1, 4, 16), by
bisection on k in [0, K_MAX]. Times that do not grow with the rows give k 0 and the least time
as the fixed cost; times that are not monotone give no k (a note says which). The exact fit
amplifies noise in the increments, so each k comes with a band (`k_band`): the k's of the times
moved by up to the noise (half the median spread of the repeated runs), "open" when an
increment is within it.

Printed: per stage and size the best wall s and Spark jobs, the fixed cost a, k, its band and
the share of the 16x time above a; ingest's parts (files, Kafka) with their k; the same on CPU
s (steadier on a shared machine); per stage the verdict against the goal (k <= 1.05),
`metric <stage>_growth_exponent <k>` and `metric <stage>_fixed_s <a>` (wall); the other
processes' CPU during each run (cpu_watch: noisy runs are marked) and the notes.

Why 20,000 listings a day at 1x: the chain's fixed cost is ~45 CPU s whatever the rows
(validate alone runs 76 Spark jobs a day, train 127; Delta commits, run-log rows, MLflow). k
only sees the part above it, so the 16x point must spend well above it on rows for the time
increments to stand out of the noise. Measured on this machine (quiet): 59 / 87 / 166 CPU s and
37 / 54 / 95 s wall for the chain at 40,000 / 160,000 / 640,000 listings (x16: ~510,000 sales,
train 29 s), 72% of the 16x time above the fixed cost; at 2,500 a day the times barely grew, at
10,000 the smaller stages' bands stayed open. The whole bench (setup ~50 s, the warm-up and 2
runs of each size) took 8.5 minutes on 2 quiet cores; when other work holds 1.5 of the cores it
takes 2-3 times as long (cpu_watch says so).

    .venv/bin/python bench/scaling.py [--rows BASE] [--days D] [--factors 1,4,16]
                                      [--repeats R] [--no-warmup] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import timing
from cpu_watch import CpuWatch
from timing import BenchError, Side, say

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
START = dt.date(2026, 1, 1)
TRAIN_AFTER_DAYS = 60  # train as of the last day + this: every sale (5-45 days on) happened
DEFAULT_ROWS = 20_000
DEFAULT_FACTORS = (1, 4, 16)
STAGES = ("ingest", "validate", "features", "training_set", "train", "predict")
GOAL_K = 1.05
K_MAX = 5.0  # a stage growing faster than rows^5 is reported at this bound
SEED = 7


# --- the fit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerFit:
    """t = a + b * n^k through three (n, t) points. `k` None: no exponent fits (see `note`);
    k 0: the time does not grow with n, `a` is then the least time and `b` 0."""

    k: float | None
    a: float | None
    b: float | None
    note: str = ""

    def at(self, n: float) -> float:
        if self.k is None or self.a is None or self.b is None:
            raise ValueError(f"no fitted curve to evaluate ({self.note})")
        return self.a + self.b * n**self.k


def _increment_ratio(k: float, x1: float, x2: float, x3: float) -> float:
    """(x3^k - x2^k) / (x2^k - x1^k), its limit ln(x3/x2) / ln(x2/x1) at k = 0 (expm1 keeps
    it exact near 0). Increases with k."""
    if k == 0.0:
        return math.log(x3 / x2) / math.log(x2 / x1)
    upper = x2**k * math.expm1(k * math.log(x3 / x2))
    lower = x1**k * math.expm1(k * math.log(x2 / x1))
    return upper / lower


def fit_power(sizes: Sequence[float], times: Sequence[float]) -> PowerFit:
    """The exact t = a + b * n^k through three points (sizes strictly increasing and > 0,
    times >= 0). k by bisection on the increments' ratio within [0, K_MAX]; a flatter rise is
    reported as k 0 (fixed cost + noise), a steeper one at K_MAX, each with a note."""
    if len(sizes) != 3 or len(times) != 3:
        raise ValueError(f"fit_power needs 3 sizes and 3 times, got {len(sizes)} and {len(times)}")
    n1, n2, n3 = (float(n) for n in sizes)
    t1, t2, t3 = (float(t) for t in times)
    if not 0 < n1 < n2 < n3 or not all(math.isfinite(n) for n in (n1, n2, n3)):
        raise ValueError(f"sizes must be finite, > 0 and strictly increasing, got {list(sizes)}")
    if not all(math.isfinite(t) and t >= 0 for t in (t1, t2, t3)):
        raise ValueError(f"times must be finite and >= 0, got {list(times)}")
    shown = ", ".join(f"{t:.2f}" for t in (t1, t2, t3))
    if t3 <= t1:
        return PowerFit(
            0.0, min(t1, t2, t3), 0.0, f"the time does not grow with the rows ({shown} s): k 0"
        )
    if not t1 < t2 < t3:
        return PowerFit(
            None, None, None, f"the times are not monotone in the rows ({shown} s): no k fits"
        )
    x1, x2, x3 = 1.0, n2 / n1, n3 / n1  # scaled: n1^k stays out of the bisection
    ratio = (t3 - t2) / (t2 - t1)
    note = ""
    if ratio <= _increment_ratio(0.0, x1, x2, x3):
        return PowerFit(
            0.0,
            min(t1, t2, t3),
            0.0,
            f"the time rises less than any power of the rows ({shown} s): k < 0 taken as 0",
        )
    if ratio >= _increment_ratio(K_MAX, x1, x2, x3):
        k = K_MAX
        note = f"the time rises faster than rows^{K_MAX:g} ({shown} s): k >= {K_MAX:g}"
    else:
        lo, hi = 0.0, K_MAX
        for _ in range(200):
            mid = (lo + hi) / 2
            if _increment_ratio(mid, x1, x2, x3) < ratio:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        k = (lo + hi) / 2
    b_scaled = (t2 - t1) / (x2**k - x1**k)
    a = t1 - b_scaled * x1**k
    if a < 0:
        note = (note + "; " if note else "") + f"fixed cost a = {a:.2f} s < 0: the curve bends up"
    return PowerFit(k, a, b_scaled / n1**k, note)


def k_band(
    sizes: Sequence[float], times: Sequence[float], delta: float
) -> tuple[float, float] | None:
    """The least and the largest k of the fits to the times each moved by -delta, 0 or +delta
    (27 fits): how far noise of `delta` seconds can move k. None when some of those times fit
    no k (an increment is within 2 x delta: the noise swamps the growth)."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    ks = []
    for moves in itertools.product((-delta, 0.0, delta), repeat=3):
        fit = fit_power(sizes, [max(0.0, t + m) for t, m in zip(times, moves, strict=True)])
        if fit.k is None:
            return None
        ks.append(fit.k)
    return min(ks), max(ks)


# --- setup: one factor's data ----------------------------------------------------------------


@dataclass
class Scale:
    """One factor's data: its spec (own topic), landing files and what was generated."""

    factor: int
    rows_per_day: int
    folder: Path
    spec_path: Path
    landing: Path  # the generated landing/ folder, copied into each run's lakehouse
    source: object  # the spec's Kafka source (the factor's own topic, deleted at the end)
    listings: int = 0
    sales: int = 0
    last_day_listings: int = 0
    runs: int = 0


def run_config(args: argparse.Namespace, folder: Path):
    """The config keeping one run's state (lakehouse, MLflow, online store) in `folder`."""
    from serve import set_pairs

    from lakeloop.config import load_config, parse_set_pairs

    overrides = parse_set_pairs(set_pairs(folder))
    # one long-lived driver doing the whole chain: the full JIT pays off (as in bench/serve.py)
    overrides["spark"] = {"driver_java_options": ""}
    return load_config(args.env, overrides, project_root=ROOT)


def prepare_scale(args: argparse.Namespace, scratch: Path, factor: int) -> Scale:
    """Generate the factor's listing files and produce its sales (untimed)."""
    from serve import write_spec

    from lakeloop.generate import houses as gen
    from lakeloop.spec import load_pipeline

    folder = scratch / f"x{factor}"
    folder.mkdir(parents=True)
    rows = factor * args.rows
    spec_path = write_spec(folder, f"bench.scaling.x{factor}.{uuid.uuid4().hex[:8]}")
    pipeline = load_pipeline(run_config(args, folder / "data"), str(spec_path))
    scale = Scale(
        factor,
        rows,
        folder,
        spec_path,
        pipeline.local_root / "landing",
        pipeline.spec.sources.kafka[0],
    )
    t = time.perf_counter()
    messages: list = []
    for n in range(args.days):
        counts, msgs = gen.generate_day(
            pipeline, START + dt.timedelta(days=n), rows, 0.0, seed=SEED, history=0 if n else rows
        )
        scale.listings += counts["listings"]
        scale.last_day_listings = counts["listings"] - counts["history_listings"]
        messages += msgs
    scale.sales = len(messages)
    t_gen = time.perf_counter() - t
    gen.produce_sales(pipeline, messages)
    say(
        f"  x{factor}: {scale.listings:,} listings ({rows:,} a day), {scale.sales:,} sales "
        f"generated in {t_gen:.1f}s, produced in {time.perf_counter() - t - t_gen:.1f}s"
    )
    return scale


# --- one run of the chain --------------------------------------------------------------------


@dataclass
class Chain:
    """One timed run's state: its pipeline, the dates, the checked counts so far."""

    pipeline: object
    days: list[dt.date]
    as_of: dt.date
    counts: dict[str, int] = field(default_factory=dict)


def _expect(stage: str, what: str, got: int | None, want: int) -> None:
    if got != want:
        raise BenchError(f"{stage}: {what} is {got}, the input implies {want}")


def _phase(label: str, fn: Callable[[], T]) -> T:
    """fn(), its wall s added to the timed run's named phases (timing.PHASES) under `label`."""
    t = time.perf_counter()
    try:
        return fn()
    finally:
        timing.add_phase(label, time.perf_counter() - t)


def _sum(recs: list, key: str, output: bool = True) -> int:
    return sum(int((r.output_counts if output else r.input_counts).get(key, 0)) for r in recs)


def stage_fns(spark, chain: Chain, scale: Scale) -> dict[str, Callable[[], None]]:
    """Each stage: the jobs' run()s, then its outputs checked against the input."""
    from lakeloop.jobs import (
        build_features,
        build_training_set,
        ingest_files,
        ingest_kafka,
        predict,
        train,
        validate,
    )

    p, days, last, c = chain.pipeline, chain.days, chain.days[-1], chain.counts

    def ingest() -> None:
        recs = [_phase("ingest_files", lambda d=d: ingest_files.run(spark, p, d)) for d in days]
        _expect("ingest", "bronze_listings rows", _sum(recs, "bronze_listings"), scale.listings)
        malformed = sum(v for r in recs for k, v in r.output_counts.items() if "malformed" in k)
        _expect("ingest", "malformed listing records", malformed, 0)
        rec = _phase("ingest_kafka", lambda: ingest_kafka.run(spark, p, last))
        _expect("ingest", "bronze_sales rows", _sum([rec], "bronze_sales"), scale.sales)
        _expect("ingest", "dead letters", _sum([rec], "dead_letter"), 0)

    def validate_() -> None:
        recs = [validate.run(spark, p, d) for d in days]
        for entity, total in (("listings", scale.listings), ("sales", scale.sales)):
            silver, quarantine = _sum(recs, f"silver_{entity}"), _sum(recs, f"quarantine_{entity}")
            _expect(
                "validate",
                f"bronze_{entity} rows read",
                _sum(recs, f"bronze_{entity}", False),
                total,
            )
            _expect(
                "validate", f"silver_{entity} + quarantine_{entity}", silver + quarantine, total
            )
            c[f"silver_{entity}"] = silver

    def features() -> None:
        rec = build_features.backfill(spark, p, days[0], last)
        _expect("features", "feature rows written", _sum([rec], "features"), c["silver_listings"])

    def training_set() -> None:
        rec = build_training_set.run(spark, p, chain.as_of)
        _expect("training_set", "label rows", _sum([rec], "training_set"), c["silver_sales"])
        c["labels_with_features"] = _sum([rec], "training_set.with_features")

    def train_() -> None:
        rec = train.run(spark, p, chain.as_of)
        rows = _sum([rec], "train_rows") + _sum([rec], "test_rows")
        _expect("train", "train + test rows", rows, c["labels_with_features"])
        if rec.details.get("decision") != "promoted":
            raise BenchError(
                f"train: the first model was not promoted ({rec.details.get('decision')}: "
                f"{rec.details.get('reason')}); predict would have no champion"
            )

    def predict_() -> None:
        rec = predict.run(spark, p, last)
        _expect(
            "predict", f"predictions of {last}", _sum([rec], "predictions"), scale.last_day_listings
        )
        _expect("predict", "unscored predictions", _sum([rec], "predictions.not_scored"), 0)

    fns = [ingest, validate_, features, training_set, train_, predict_]
    return dict(zip(STAGES, fns, strict=True))


def fresh_chain(args: argparse.Namespace, scale: Scale, label: str) -> Chain:
    """A fresh lakehouse + MLflow store for one run, the landing files copied in (untimed)."""
    from lakeloop.ml import tracking
    from lakeloop.spec import load_pipeline

    scale.runs += 1
    folder = scale.folder / f"{label}{scale.runs}"
    pipeline = load_pipeline(run_config(args, folder), str(scale.spec_path))
    shutil.copytree(scale.landing, pipeline.local_root / "landing")
    tracking.configure(pipeline.cfg).search_experiments()  # creates the MLflow store's tables
    days = [START + dt.timedelta(days=n) for n in range(args.days)]
    return Chain(pipeline, days, days[-1] + dt.timedelta(days=TRAIN_AFTER_DAYS))


def run_chain(
    args: argparse.Namespace,
    spark,
    scale: Scale,
    sides: dict[str, Side] | None,
    rep: int,
    notes: list[str],
    also: tuple[int, ...],
) -> None:
    """The stages once on a fresh lakehouse: timed into `sides` (None: the untimed warm-up)."""
    chain = fresh_chain(args, scale, "run" if sides is not None else "warmup")
    label = f"x{scale.factor} " + (f"run {rep + 1}" if sides is not None else "warm-up")
    try:
        with CpuWatch(label, notes, say, also=also, note_always=sides is not None):
            for stage, fn in stage_fns(spark, chain, scale).items():
                if sides is None:
                    t = time.perf_counter()
                    fn()
                    say(f"  warm-up {stage}: {time.perf_counter() - t:.1f}s")
                else:
                    timing.timed_run(
                        sides[stage],
                        lambda _rep, fn=fn: fn(),
                        rep,
                        args.repeats,
                        spark=spark,
                        also=also,
                    )
    finally:
        if not args.keep:
            shutil.rmtree(chain.pipeline.local_root.parent, ignore_errors=True)


# --- report ----------------------------------------------------------------------------------


Sides = dict[tuple[str, int], Side]


def _value(stage: str, factor: int, sides: Sides, cpu: bool) -> float:
    """The stage's best wall s (or, with `cpu`, its least CPU s) at `factor`; `total`: the
    sum over the stages."""
    if stage == "total":
        return sum(_value(st, factor, sides, cpu) for st in STAGES)
    side = sides[(stage, factor)]
    return side.best_cpu if cpu else side.best


def _jobs(stage: str, factor: int, sides: Sides) -> int:
    if stage == "total":
        return sum(_jobs(st, factor, sides) for st in STAGES)
    side = sides[(stage, factor)]
    return side.best_of(side.jobs)


@dataclass(frozen=True)
class StageFit:
    """A stage's fit, the noise it was judged against (half the median spread of the repeated
    runs over the sizes; None with one run) and the k band that noise allows."""

    fit: PowerFit
    noise: float | None
    band: tuple[float, float] | None

    def band_text(self) -> str:
        if self.noise is None:
            return "-"
        return "open" if self.band is None else f"{self.band[0]:.2f}-{self.band[1]:.2f}"


def _noise(stage: str, scales: list[Scale], sides: Sides, cpu: bool) -> float | None:
    spreads = []
    for s in scales:
        stages = STAGES if stage == "total" else (stage,)
        runs = [sides[(st, s.factor)].cpu if cpu else sides[(st, s.factor)].times for st in stages]
        if min(len(r) for r in runs) < 2:
            return None
        per_run = [sum(vals) for vals in zip(*runs, strict=False)]
        spreads.append(max(per_run) - min(per_run))
    return statistics.median(spreads) / 2


def fits(scales: list[Scale], sides: Sides, cpu: bool = False) -> dict[str, StageFit]:
    """Per stage (and the total) the fit of its best times (least CPU s with `cpu`)."""
    sizes = [s.rows_per_day for s in scales]
    out = {}
    for stage in (*STAGES, "total"):
        times = [_value(stage, s.factor, sides, cpu) for s in scales]
        noise = _noise(stage, scales, sides, cpu)
        band = k_band(sizes, times, noise) if noise is not None else None
        out[stage] = StageFit(fit_power(sizes, times), noise, band)
    return out


def _fit_cells(sf: StageFit, top: float) -> str:
    fit = sf.fit
    a = "n/a" if fit.a is None else f"{fit.a:.2f}"
    k = "n/a" if fit.k is None else f"{fit.k:.2f}"
    grows = "n/a" if fit.a is None or top <= 0 else f"{min(1.0, max(0.0, top - fit.a) / top):.0%}"
    return f"{a:>9}{k:>7}{sf.band_text():>11}{grows:>7}"


def print_table(scales: list[Scale], sides: Sides, fitted: dict[str, StageFit], cpu: bool) -> None:
    unit = "cpu s" if cpu else "s"
    head = "".join(f"{f'x{s.factor} {unit}':>11}" + ("" if cpu else f"{'jobs':>6}") for s in scales)
    fixed = "fixed " + unit
    print(
        f"{'stage':<13}{head}{fixed:>9}{'k':>7}{'k band':>11}{'grows':>7}"
        + ("" if cpu else "  runs (s)")
    )
    for stage in (*STAGES, "total"):
        cells, runs = "", []
        for s in scales:
            cells += f"{_value(stage, s.factor, sides, cpu):>11.2f}"
            if not cpu:
                cells += f"{_jobs(stage, s.factor, sides):>6}"
            if stage != "total":
                times = sides[(stage, s.factor)].times
                runs.append(f"x{s.factor} " + "/".join(f"{x:.1f}" for x in times))
        top = _value(stage, scales[-1].factor, sides, cpu)
        line = f"{stage:<13}{cells}{_fit_cells(fitted[stage], top)}"
        print(line + ("" if cpu else f"  {', '.join(runs)}"))


def print_parts(scales: list[Scale], sides: Sides) -> None:
    """The named parts of the stages that record them (ingest: files, Kafka): each part's wall
    s in the stage's best run per size and the k of those."""
    sizes = [s.rows_per_day for s in scales]
    for stage in STAGES:
        parts = [sides[(stage, s.factor)].best_of(sides[(stage, s.factor)].phases) for s in scales]
        if not all(parts):
            continue
        cells = []
        for name in parts[0]:
            times = [ph.get(name, 0.0) for ph in parts]
            k = fit_power(sizes, times).k
            shown = " / ".join(f"{t:.2f}" for t in times)
            cells.append(f"{name} {shown} s (k {'n/a' if k is None else f'{k:.2f}'})")
        print(
            f"  {stage} in parts (its best runs, x{' / x'.join(str(s.factor) for s in scales)}): "
            + "; ".join(cells)
        )


def report(
    scales: list[Scale],
    sides: Sides,
    fitted: dict[str, StageFit],
    cpu_fitted: dict[str, StageFit],
    notes: list[str],
) -> None:
    print()
    print_table(scales, sides, fitted, cpu=False)
    sizes = ", ".join(
        f"x{s.factor} = {s.rows_per_day:,} listings/day ({s.listings:,} in all)" for s in scales
    )
    print(
        "  (wall s: the best run per stage and size; jobs: its Spark jobs; fixed s and k: "
        "t = a + b*rows^k through the three sizes; k band: the k's of the times each moved by "
        "up to the noise, half the median spread of the repeated runs, 'open' when an increment "
        "is within it; grows: the share of the largest size's time above the fixed cost; "
        f"{sizes})"
    )
    print_parts(scales, sides)
    print()
    print_table(scales, sides, cpu_fitted, cpu=True)
    print(
        "  (the same fit on CPU seconds: this process + its Spark JVM + the Kafka broker, the "
        "least over the runs; less swayed by other work on the machine than wall s, blind to "
        "waiting)"
    )
    print()
    for stage in STAGES:
        sf = fitted[stage]
        if sf.fit.k is None:
            print(f"# {stage}_growth_exponent: not measured ({sf.fit.note})")
            continue
        verdict = "met" if sf.fit.k <= GOAL_K else "NOT met"
        extra = ""
        if sf.noise is not None:
            extra = f" (noise +-{sf.noise:.2f} s: k band {sf.band_text()}"
            extra += "; the increments are within the noise)" if sf.band is None else ")"
        print(f"# {stage}_growth_exponent: goal <= {GOAL_K:g}, {verdict}{extra}")
    for stage in STAGES:
        fit = fitted[stage].fit
        if fit.k is not None and fit.a is not None:
            print(f"metric {stage}_growth_exponent {fit.k:.2f}")
            print(f"metric {stage}_fixed_s {fit.a:.2f}")
    for stage in (*STAGES, "total"):
        for what, sf in (("wall", fitted[stage]), ("cpu", cpu_fitted[stage])):
            if sf.fit.note:
                print(f"# note: {stage} ({what}): {sf.fit.note}")
    for n in notes:
        print(f"# note: {n}")


# --- main ------------------------------------------------------------------------------------


def _factors(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--factors {text!r}: integers like 1,4,16") from None
    if len(out) != 3 or not 0 < out[0] < out[1] < out[2]:
        raise argparse.ArgumentTypeError(f"--factors {text!r}: three increasing integers >= 1")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scaling.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help=f"listings a day at 1x ({DEFAULT_ROWS:,})"
    )
    p.add_argument("--days", type=int, default=1, help="days of listings (1)")
    p.add_argument("--factors", type=_factors, default=DEFAULT_FACTORS, help="1,4,16")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per size (best counts)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed 1x warm-up chain")
    p.add_argument("--env", default="dev", help="config environment (dev: the demo's broker)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    if args.rows < 50 or args.days < 1 or args.repeats < 1:
        p.error("--rows must be at least 50, --days and --repeats at least 1")
    return args


def timed_runs(
    args: argparse.Namespace,
    cfg,
    scratch: Path,
    scales: list[Scale],
    sides: Sides,
    res: timing.Results,
    also: tuple[int, ...],
) -> None:
    """The warm-up, then every size `--repeats` times (odd rounds in reverse), one session."""
    try:
        with timing.spark_session(cfg, "lakeloop-bench-scaling", scratch, args.keep) as spark:
            ok = args.no_warmup or res.part(
                "warm-up",
                lambda: run_chain(args, spark, scales[0], None, 0, res.notes, also) or True,
            )
            for rep in range(args.repeats if ok else 0):
                for s in scales if rep % 2 == 0 else scales[::-1]:
                    say(f"x{s.factor} run {rep + 1}/{args.repeats}")
                    done = res.part(
                        f"x{s.factor} run {rep + 1}",
                        lambda s=s, rep=rep: (
                            run_chain(args, spark, s, _of(sides, s), rep, res.notes, also) or True
                        ),
                    )
                    if not done:
                        return
    except Exception as e:  # e.g. its JVM died and cannot be stopped: said, not raised
        res.failed.append(f"spark session: {e}")
        say(f"spark session: FAILED: {e}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from serve import _delete_topic

    from lakeloop import kafka_broker

    scratch = BENCH_ROOT / f"scaling-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir(parents=True)
    say(
        f"scratch {scratch}; {args.rows:,} listings/day x {args.days} days at factors "
        f"{','.join(map(str, args.factors))}, {args.repeats} runs each; load avg "
        f"{os.getloadavg()[0]:.1f}"
    )
    res = timing.Results()
    cfg = run_config(args, scratch)
    was_up = kafka_broker.status(cfg)["answers"]
    scales: list[Scale] = []
    sides = {
        (st, f): Side(f"{st} x{f}", f * args.rows * (args.days + 1))
        for st in STAGES
        for f in args.factors
    }
    try:
        broker = kafka_broker.up(cfg)
        also = (int(broker["pid"]),) if broker.get("pid") else ()
        say("setup (untimed):" + (" broker was running" if was_up else " broker started"))
        for f in args.factors:
            got = res.part(f"setup x{f}", lambda f=f: prepare_scale(args, scratch, f))
            if got is None:
                break
            scales.append(got)
        if len(scales) == len(args.factors):
            timed_runs(args, cfg, scratch, scales, sides, res, also)
    finally:
        for s in scales:
            try:
                _delete_topic(cfg, s.source)
            except Exception as e:  # litter, not a failure of the bench
                say(f"  could not delete the topic of x{s.factor}: {e}")
        if not was_up:
            kafka_broker.down(cfg)
            say("broker stopped")
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if not res.failed and all(sides[(st, s.factor)].times for st in STAGES for s in scales):
        report(scales, sides, fits(scales, sides), fits(scales, sides, cpu=True), res.notes)
    return res.finish([], lambda *_: None)


def _of(sides: Sides, scale: Scale) -> dict[str, Side]:
    return {st: sides[(st, scale.factor)] for st in STAGES}


if __name__ == "__main__":
    sys.exit(main())
