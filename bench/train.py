"""make bench-train: lakeloop's model training and batch scoring against plain baselines.

1. the fit: `build_pipeline(ModelSpec)` (linear_regression, 8 numeric features, no grid: assembler
   -> LinearRegression, which standardizes inside MLlib) fit on `--rows` rows read by Spark from
   Parquet (`model_input` as the train job builds it), against scikit-learn's LinearRegression fit
   on the same Parquet read by pandas/pyarrow. Both sides time read + fit; both models' R^2 on the
   training rows are printed (and must agree).                       ratio `mllib_vs_sklearn`
   The same two sides also run at `--sizes` row counts (default --rows/10 and --rows/3): the row
   count where MLlib's time per row meets scikit-learn's, interpolated between the sizes, is
   printed as `metric mllib_sklearn_crossover_rows <n>` (or `n/a (none up to N)`), no goal.
2. tuning: CrossValidator over the same pipeline with a 6-point grid (regParam x elasticNetParam)
   and 3 time folds (`with_time_folds`, as the train job does) on a `--cv-rows` slice, cached in
   as many partitions as Spark has cores (`--cv-partitions`); parallelism=1 vs parallelism=2
   (each fit's Spark jobs can already use every core; p=2 fills the gaps). The value is
   time(p=1) / time(p=2).                                             ratio `cv_parallel_speedup`
3. the train job's fit + CV + evaluation: `jobs/train.py`'s own `hold_out` + `tune_and_score`
   (the time split, caches, label summary and counts, time folds, CrossValidator with the grid
   above at the config's training.parallelism, the test-window metrics, the naive baselines,
   the feature weights) vs the same MLlib calls written by hand (split, approxQuantile fold
   cuts, CrossValidator, a RegressionEvaluator per metric on the test window), on the same
   `--cv-rows` slice cached once. Both must give the same best params, CV means and test
   metrics (1e-9 relative). A breakdown by phase (seconds and Spark jobs per side) shows where
   ours' extra time goes.                                             ratio `train_vs_bare_mllib`
4. scoring: `scored_entities` (champion only) counted and checksummed while written
   (`predict.observed_predictions`) + `delta_io.replace_partition` into a Delta table
   partitioned by prediction_date (what the predict job does, minus loading the model from
   MLflow) vs a bare `model.transform(df).select(key, prediction)` written as Parquet, on the
   same `--rows` entities. A third, diagnostic side writes scored_entities' output as Parquet
   (the extra columns without Delta); a fourth, the floor, writes the bare side's rows as
   predict must write a day (Delta partitioned by the date, the date replaced): the best ratio
   any such design can reach.                                         ratio `scoring_vs_bare`

Each ratio is baseline seconds / our seconds for the same work (higher is better; for the CV
speedup, p=1 seconds / p=2 seconds), printed as one line `ratio <name> <value>`. The synthetic
data (seeded numpy: 8 numeric features, a linear label + noise, a key and a timestamp) is
written once to Parquet, untimed. One Spark session (config env `dev`); one warm-up run of every
side on small data first; timed runs alternate the order of the sides and the best of
`--repeats` (3) counts. The machine is small (2 cores): the CPU used by other processes during the
timed runs is reported alongside.

    .venv/bin/python bench/train.py [--rows N] [--cv-rows M] [--sizes N,N] [--repeats R]
                                    [--skip-fit] [--skip-cv] [--skip-train] [--skip-scoring]
                                    [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import timing
from cpu_watch import CpuWatch
from timing import BenchError, Side, add_phase, alternate, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
GOALS = {
    "mllib_vs_sklearn": 0.33,
    "cv_parallel_speedup": 1.5,
    "train_vs_bare_mllib": 0.9,
    "scoring_vs_bare": 0.85,
}
DEFAULT_ROWS = 1_000_000
DEFAULT_CV_ROWS = 200_000
WARMUP_ROWS = 20_000

# The synthetic data set.
FEATURE_COLS = [f"x{i}" for i in range(8)]
KEY = "entity_id"
TS = "ts"
Y = "y"
TRUE_R2 = 0.8  # the noise is sized so a perfect linear fit has this R^2
DATA_START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
DATA_DAYS = 90
DAY = dt.date(2026, 1, 1)  # the prediction date scoring writes
CV_GRID = {"regParam": [0.001, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]}
CV_FOLDS = 3

SECONDARY: dict[str, str] = {}  # other views of the ratios, printed as comments only
METRICS: dict[str, str] = {}  # printed as `metric <name> <value>` lines (no goal)


# --- timing ----------------------------------------------------------------------------------


@contextmanager
def timed_methods(targets: list[tuple[object, str, str]], spark=None) -> Iterator[None]:
    """Time calls of (class or module, attribute) into timing.PHASES under a label (pyspark's
    and lakeloop's own functions are wrapped for the block; nothing in src/ changes). With
    `spark`, also count the Spark jobs each label's calls start into PHASE_JOBS (only for calls
    made one at a time: jobs of other threads in the same window count too)."""
    undo: list[Callable[[], None]] = []
    for owner, attr, label in targets:
        own = attr in vars(owner)
        orig = getattr(owner, attr)

        def timed(*a, _orig=orig, _label=label, **kw):
            with phase(_label, spark):
                return _orig(*a, **kw)

        setattr(owner, attr, timed)
        undo.append(
            (lambda c=owner, n=attr, o=orig: setattr(c, n, o))
            if own
            else (lambda c=owner, n=attr: delattr(c, n))
        )
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


PHASE_JOBS: dict[str, int] = {}  # Spark jobs per phase label in the current run (with spark)


@contextmanager
def phase(label: str, spark=None) -> Iterator[None]:
    """Time the block into timing.PHASES[label]; with `spark`, add the Spark jobs it started
    (in the current job group, which timed_run sets) to PHASE_JOBS[label]."""
    sc = spark.sparkContext if spark is not None else None
    group = sc.getLocalProperty("spark.jobGroup.id") if sc is not None else None

    def jobs() -> int:
        return len(sc.statusTracker().getJobIdsForGroup(group)) if group else 0

    before, t = jobs(), time.perf_counter()
    try:
        yield
    finally:
        add_phase(label, time.perf_counter() - t)
        if group:
            PHASE_JOBS[label] = PHASE_JOBS.get(label, 0) + jobs() - before


# --- data ------------------------------------------------------------------------------------


def write_data(path: Path, rows: int, files: int, seed: int) -> None:
    """`rows` rows in `files` Parquet files: KEY (0..rows-1), TS (uniform over DATA_DAYS days),
    8 numeric features of very different scales and a linear label with noise (R^2 ~ TRUE_R2).
    Same coefficients for every seed; the seed only draws the rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    coef_rng = np.random.default_rng(1234)
    k = len(FEATURE_COLS)
    means = coef_rng.uniform(-50, 500, k)
    scales = 10.0 ** coef_rng.uniform(-1, 3, k)
    weights = coef_rng.uniform(-3, 3, k) / scales  # every feature adds about the same variance
    signal_var = float(np.sum((weights * scales) ** 2))
    noise_sd = (signal_var * (1 - TRUE_R2) / TRUE_R2) ** 0.5

    rng = np.random.default_rng(seed)
    x = means + scales * rng.standard_normal((rows, k))
    y = 100.0 + x @ weights + noise_sd * rng.standard_normal(rows)
    start_us = int(DATA_START.timestamp() * 1_000_000)
    ts = start_us + rng.integers(0, DATA_DAYS * 86400, rows) * 1_000_000
    table = pa.table(
        {
            KEY: pa.array(np.arange(rows, dtype=np.int64)),
            TS: pa.array(ts, type=pa.timestamp("us", tz="UTC")),
            **{c: pa.array(x[:, i]) for i, c in enumerate(FEATURE_COLS)},
            Y: pa.array(y),
        }
    )
    path.mkdir(parents=True)
    per = -(-rows // files)
    for i in range(files):
        part = table.slice(i * per, per)
        if part.num_rows:
            pq.write_table(part, path / f"part-{i:03d}.parquet")


def model_spec(grid: dict | None = None, params: dict | None = None):
    from lakeloop.spec import ModelSpec

    return ModelSpec.model_validate(
        {
            "name": "bench_linear",
            "task": "regression",
            "features": {"numeric": FEATURE_COLS, "categorical": [], "impute": {}},
            "estimator": {
                "type": "linear_regression",
                "params": params or {},
                "grid": grid or {},
            },
            "tuning": {"folds": CV_FOLDS, "metric": "rmse"},
            "test_days": 7,
            "promotion": {"metric": "rmse"},
            "predictions": "predictions",
        }
    )


# --- 1. MLlib fit vs scikit-learn --------------------------------------------------------------


def bench_fit(spark, args, data: dict[str, str], notes: list[str]):
    import pandas as pd
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.ml.regression import LinearRegression as SparkLR
    from sklearn.linear_model import LinearRegression

    from lakeloop.ml import pipeline as mlp
    from lakeloop.transforms.modeling import model_input

    spec = model_spec()
    stages = [type(s).__name__ for s in mlp.build_pipeline(spec).getStages()]

    def rows_of(which: str):
        return model_input(spark.read.parquet(data[which]), spec, Y, TS)

    def ours(which: str):
        return mlp.build_pipeline(spec).fit(rows_of(which))

    def sklearn(which: str):
        t = time.perf_counter()
        df = pd.read_parquet(data[which], columns=[*FEATURE_COLS, Y])
        x, y = df[FEATURE_COLS].to_numpy(), df[Y].to_numpy()
        add_phase("read (pandas/pyarrow -> numpy)", time.perf_counter() - t)
        t = time.perf_counter()
        model = LinearRegression().fit(x, y)
        add_phase("fit", time.perf_counter() - t)
        return model

    def one_scan(which: str) -> None:
        # diagnostic: one pass of what each MLlib fit stage reads (Parquet -> assembled vectors)
        assembled = VectorAssembler(inputCols=FEATURE_COLS, outputCol="v").transform(rows_of(which))
        assembled.select("v", mlp.LABEL).write.format("noop").mode("overwrite").save()

    def sklearn_r2(model, which: str) -> float:
        df = pd.read_parquet(data[which], columns=[*FEATURE_COLS, Y])
        return float(model.score(df[FEATURE_COLS].to_numpy(), df[Y].to_numpy()))

    def spark_r2(model, which: str) -> float:
        return float(mlp.evaluator(spec, "r2").evaluate(model.transform(rows_of(which))))

    sides = [
        (Side("fit  ours: build_pipeline(spec).fit", args.rows), ours),
        (Side("fit  baseline: sklearn LinearRegression", args.rows), sklearn),
    ]
    if not args.no_diagnostics:
        sides.append((Side("fit  diag: spark read + assemble, 1 pass", args.rows), one_scan))
    wrap = [
        (StandardScaler, "_fit", "StandardScaler fit"),
        (SparkLR, "_fit", "LinearRegression fit"),
    ]
    say(f"fit: pipeline stages {' -> '.join(stages)}; warm-up, one run of each side")
    with timed_methods(wrap):
        for side, fn in sides:
            t = time.perf_counter()
            fn("warm")
            say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
        say(f"fit: timed runs on {args.rows:,} rows, {args.repeats} per side, order alternating")
        with CpuWatch("the timed fit runs", notes, say, note_always=True):
            runs = [(s, lambda _rep, fn=fn: fn("main")) for s, fn in sides]
            last = alternate(args.repeats, runs, spark=spark, stages=True)
    ours_model, sk_model = last[0], last[1]
    by_size = [(s, fn) for n in args.sizes for s, fn in _size_sides(n, ours, sklearn)]
    if by_size:
        say(f"fit: the same two sides at {', '.join(f'{n:,}' for n in args.sizes)} rows")
        with timed_methods(wrap), CpuWatch("the timed fit runs by size", notes, say):
            alternate(args.repeats, by_size, spark=spark)
    points = [(args.rows, sides[0][0].best, sides[1][0].best)]
    points += [
        (a.rows, a.best, b.best) for (a, _), (b, _) in zip(by_size[::2], by_size[1::2], strict=True)
    ]
    METRICS["mllib_sklearn_crossover_rows"], SECONDARY["mllib_sklearn_crossover_rows"] = crossover(
        sorted(points)
    )
    r2_ours, r2_sk = spark_r2(ours_model, "main"), sklearn_r2(sk_model, "main")
    say(
        f"fit: R^2 on the {args.rows:,} training rows: MLlib {r2_ours:.6f}, sklearn {r2_sk:.6f} "
        f"(the data's noise allows ~{TRUE_R2})"
    )
    if abs(r2_ours - r2_sk) > 1e-3:
        raise BenchError(f"the models differ: R^2 MLlib {r2_ours:.6f} vs sklearn {r2_sk:.6f}")
    lr = ours_model.stages[-1]
    notes.append(
        f"fit: R^2 on the training rows MLlib {r2_ours:.6f}, sklearn {r2_sk:.6f}; MLlib solver "
        f"{lr.getOrDefault('solver')} (auto = the normal equations, WeightedLeastSquares, for "
        f"<= 4096 features); stages {' -> '.join(stages)}"
    )
    ours_side, base_side = sides[0][0], sides[1][0]
    ratios = {"mllib_vs_sklearn": base_side.best / ours_side.best}
    SECONDARY["mllib_vs_sklearn"] = (
        f"by CPU s (least of the runs, this process + its JVM): "
        f"{base_side.best_cpu / ours_side.best_cpu:.2f}"
    )
    if len(sides) > 2:
        scan = sides[2][0].best
        SECONDARY["mllib_vs_sklearn (passes)"] = (
            f"ours' best run holds {ours_side.best_of(ours_side.jobs)} Spark jobs, each fit stage "
            f"reading the Parquet again (LinearRegression's normal equations, then its "
            f"training summary; StandardScaler's statistics with `scale: true`); one bare pass of Parquet -> "
            f"assembled vectors takes {scan:.2f}s, {scan / base_side.best:.1f}x sklearn's "
            f"whole read + fit"
        )
    return [s for s, _ in sides] + [s for s, _ in by_size], ratios, ours_model


def _size_sides(rows: int, ours, sklearn) -> list[tuple[Side, Callable[[int], object]]]:
    """Both fit sides on the data set of `rows` rows (`size_key(rows)` in the data paths)."""
    key = size_key(rows)
    return [
        (Side(f"fit  ours @ {rows:,}", rows), lambda _rep: ours(key)),
        (Side(f"fit  sklearn @ {rows:,}", rows), lambda _rep: sklearn(key)),
    ]


def size_key(rows: int) -> str:
    return f"rows{rows}"


def crossover(points: list[tuple[int, float, float]]) -> tuple[str, str]:
    """Where MLlib's time per row meets scikit-learn's, from (rows, MLlib s, sklearn s) sorted
    by rows: the row count, interpolated in log(rows) between the two sizes where sklearn's
    time / MLlib's crosses 1 (or the smallest size if MLlib is already as fast there), else
    `n/a (none up to N)`. Also a comment: each side's fixed and per-row cost (a least-squares
    line through its times) and where those lines meet."""
    ratio = [(n, sk / ml) for n, ml, sk in points]
    value = f"n/a (none up to {points[-1][0]})"
    if ratio[0][1] >= 1:
        value = str(ratio[0][0])
    for (n1, r1), (n2, r2) in zip(ratio, ratio[1:], strict=False):
        if r1 < 1 <= r2:
            x = math.log(n1) + (1 - r1) / (r2 - r1) * (math.log(n2) - math.log(n1))
            value = str(round(math.exp(x)))
            break
    sizes = ", ".join(f"{n:,} {r:.2f}" for n, r in ratio)
    text = f"sklearn s / MLlib s by rows: {sizes}"
    if len(points) < 2:
        return value, text
    a_ml, b_ml = _line([(n, ml) for n, ml, _ in points])
    a_sk, b_sk = _line([(n, sk) for n, _, sk in points])
    text += (
        f"; time = fixed + rows x per-row: MLlib {a_ml:.2f}s + {b_ml * 1e6:.2f}us/row, sklearn "
        f"{a_sk:.2f}s + {b_sk * 1e6:.2f}us/row"
    )
    if b_ml < b_sk:
        text += f", the lines meet at ~{(a_ml - a_sk) / (b_sk - b_ml):,.0f} rows"
    else:
        text += (
            ": MLlib's per-row cost is the higher one, so its time per row never meets sklearn's"
        )
    return value, text


def _line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through `points`."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


# --- 2. CrossValidator parallelism -----------------------------------------------------------


def bench_cv(spark, args, data: dict[str, str], notes: list[str]):
    from pyspark.ml import Pipeline
    from pyspark.ml.tuning import CrossValidator
    from pyspark.sql import functions as F

    from lakeloop.jobs.train import _fold_boundaries
    from lakeloop.ml import pipeline as mlp
    from lakeloop.transforms.modeling import FOLD, model_input, with_time_folds

    spec = model_spec(grid=CV_GRID, params={"maxIter": 50})
    parts = args.cv_partitions or spark.sparkContext.defaultParallelism

    def folded(which: str, every: int):
        src = spark.read.parquet(data[which]).where(F.col(KEY) % every == 0)
        rows = model_input(src, spec, Y, TS).repartition(parts)
        out = with_time_folds(rows, TS, _fold_boundaries(rows, TS, CV_FOLDS)).cache()
        return out, out.count()

    every = max(1, args.rows // args.cv_rows)
    t = time.perf_counter()
    warm, n_warm = folded("warm", 1)
    main, n_main = folded("main", every)
    sizes = main.groupBy(FOLD).count().orderBy(FOLD).collect()
    say(
        f"cv: {n_main:,} rows (every {every}th of {args.rows:,}) cached in "
        f"{main.rdd.getNumPartitions()} partitions in {time.perf_counter() - t:.1f}s; "
        f"fold sizes {[r['count'] for r in sizes]}"
    )

    def cv(df, parallelism: int):
        estimator = mlp.build_pipeline(spec)
        grid = mlp.param_grid(estimator, spec)
        return CrossValidator(
            estimator=estimator,
            estimatorParamMaps=grid,
            evaluator=mlp.evaluator(spec, spec.tuning_metric),
            numFolds=CV_FOLDS,
            foldCol=FOLD,
            parallelism=parallelism,
            seed=spec.tuning.seed,
        ).fit(df)

    n_points = len(mlp.param_grid(mlp.build_pipeline(spec), spec))
    sides = [
        (Side("cv  parallelism=1", n_main), 1),
        (Side("cv  parallelism=2", n_main), 2),
    ]
    wrap = [(Pipeline, "_fit", "pipeline fits (summed over threads)")]
    try:
        with timed_methods(wrap):
            say(f"cv: warm-up on {n_warm:,} rows, one run of each side")
            for side, p in sides:
                t = time.perf_counter()
                cv(warm, p)
                say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
            say(
                f"cv: timed runs, {n_points} grid points x {CV_FOLDS} folds + the refit, "
                f"{args.repeats} per side, order alternating"
            )
            with CpuWatch("the timed cv runs", notes, say, note_always=True):
                runs = [(s, lambda _rep, p=p: cv(main, p)) for s, p in sides]
                last = alternate(args.repeats, runs, spark=spark, stages=True)
    finally:
        warm.unpersist()
        main.unpersist()
    m1, m2 = last[0].avgMetrics, last[1].avgMetrics
    if any(abs(a - b) > 1e-6 * max(1.0, abs(a)) for a, b in zip(m1, m2, strict=True)):
        raise BenchError(f"cv: parallelism changed the fold metrics: {m1} vs {m2}")
    best = min(range(len(m1)), key=m1.__getitem__)
    grid = mlp.param_grid(mlp.build_pipeline(spec), spec)
    notes.append(
        f"cv: {n_main:,} rows, grid {CV_GRID} ({n_points} points, maxIter 50) x {CV_FOLDS} time "
        f"folds, {len(sides)} sides agree on the mean rmse per point; best "
        f"{ {p.name: v for p, v in grid[best].items()} } rmse {m1[best]:.4f}; "
        f"config training.parallelism is {args.config_parallelism}"
    )
    p1, p2 = sides[0][0], sides[1][0]
    i1, i2 = p1.times.index(p1.best), p2.times.index(p2.best)
    busy1, busy2 = p1.cpu[i1] / p1.best, p2.cpu[i2] / p2.best
    fits1, fits2 = (s.phases[i].get(wrap[0][2], 0.0) for s, i in ((p1, i1), (p2, i2)))
    SECONDARY["cv_parallel_speedup"] = (
        f"cores kept busy (CPU s / wall s of the best runs): p=1 {busy1:.2f}, p=2 {busy2:.2f} "
        f"of {os.cpu_count()}, so a second thread can gain at most about "
        f"{os.cpu_count() / busy1:.2f}x here; fits summed over threads: p=1 {fits1:.1f}s of "
        f"{p1.best:.1f}s wall, p=2 {fits2:.1f}s of {p2.best:.1f}s"
    )
    return [p1, p2], {"cv_parallel_speedup": p1.best / p2.best}


# --- 3. the train job's fit + CV + evaluation vs the same MLlib calls by hand ----------------

PHASE_ORDER = [
    "hold_out: split, cache, label summary, counts",
    "time fold boundaries",
    "CrossValidator fit",
    "test metrics",
    "naive baselines",
    "feature weights",
]


def bench_train(spark, args, data: dict[str, str], notes: list[str]):
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import LinearRegression
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
    from pyspark.sql import functions as F

    import lakeloop.jobs.train as job
    from lakeloop.ml import pipeline as mlp
    from lakeloop.spec import REGRESSION_METRICS
    from lakeloop.transforms.modeling import model_input

    spec = model_spec(grid=CV_GRID, params={"maxIter": 50})
    parts = args.cv_partitions or spark.sparkContext.defaultParallelism
    parallelism = args.config_parallelism

    def cached(which: str, every: int):
        """What the job trains on (model_input of the training set), cached once, untimed."""
        src = spark.read.parquet(data[which]).where(F.col(KEY) % every == 0)
        rows = model_input(src, spec, Y, TS).repartition(parts).cache()
        n, last = rows.agg(F.count(F.lit(1)), F.max(F.to_date(TS))).first()
        return rows, n, last - dt.timedelta(days=spec.test_days - 1)  # as the job picks it

    def ours(rows, test_start: dt.date) -> dict:
        # what jobs/train.run does between reading the training set and MLflow
        estimator = mlp.build_pipeline(spec)
        grid = mlp.param_grid(estimator, spec)
        held = job.hold_out(rows, spec, TS, "UTC", test_start)
        try:
            tuned = job.tune_and_score(held, estimator, grid, spec, TS, parallelism)
        finally:
            held.unpersist()
        lr = tuned.model.stages[-1]
        return {
            "best": {"regParam": lr.getRegParam(), "elasticNetParam": lr.getElasticNetParam()},
            "metrics": tuned.metrics,
            "cv": [avg for _, avg in tuned.cv_results],
            "rows": (held.train_rows, held.test_rows),
        }

    def bare(rows, test_start: dt.date) -> dict:
        # the same MLlib calls written by hand: split, time folds, CrossValidator, evaluators
        start = F.lit(dt.datetime.combine(test_start, dt.time(), dt.UTC))
        train, test = rows.where(F.col(TS) < start), rows.where(F.col(TS) >= start)
        with phase("time fold boundaries", spark):
            secs = train.select(F.unix_timestamp(TS).cast("double").alias("t"))
            cuts = secs.approxQuantile("t", [i / CV_FOLDS for i in range(1, CV_FOLDS)], 0.0001)
        fold = sum(
            F.when(F.col(TS) >= F.lit(dt.datetime.fromtimestamp(c, dt.UTC)), 1).otherwise(0)
            for c in cuts
        )
        folded = train.withColumn("fold", fold.cast("int"))
        lr = LinearRegression(featuresCol="features", labelCol=Y, maxIter=50)
        grid = ParamGridBuilder()
        for name, values in sorted(CV_GRID.items()):
            grid = grid.addGrid(lr.getParam(name), values)
        cv = CrossValidator(
            estimator=Pipeline(
                stages=[VectorAssembler(inputCols=FEATURE_COLS, outputCol="features"), lr]
            ),
            estimatorParamMaps=grid.build(),
            evaluator=RegressionEvaluator(labelCol=Y, metricName="rmse"),
            numFolds=CV_FOLDS,
            foldCol="fold",
            parallelism=parallelism,
            seed=spec.tuning.seed,
        )
        cv_model = cv.fit(folded)
        best = cv_model.bestModel
        with phase("test metrics", spark):
            scored = best.transform(test)
            metrics = {
                m: RegressionEvaluator(labelCol=Y, metricName=m).evaluate(scored)
                for m in REGRESSION_METRICS
            }
        fitted = best.stages[-1]
        return {
            "best": {
                "regParam": fitted.getRegParam(),
                "elasticNetParam": fitted.getElasticNetParam(),
            },
            "metrics": metrics,
            "cv": list(cv_model.avgMetrics),
        }

    every = max(1, args.rows // args.cv_rows)
    t = time.perf_counter()
    warm, n_warm, warm_start = cached("warm", 1)
    main, n_main, test_start = cached("main", every)
    say(
        f"train: {n_main:,} rows (every {every}th of {args.rows:,}) cached in {parts} partitions "
        f"in {time.perf_counter() - t:.1f}s; test window from {test_start} ({spec.test_days} days)"
    )
    wrap = [
        (job, "hold_out", PHASE_ORDER[0]),
        (job, "_fold_boundaries", PHASE_ORDER[1]),
        (CrossValidator, "_fit", PHASE_ORDER[2]),
        (job, "evaluate", PHASE_ORDER[3]),  # the model's metrics (tune_and_score's own call)
        (job, "naive_baseline", PHASE_ORDER[4]),
        (mlp, "feature_weights", PHASE_ORDER[5]),
    ]
    sides = [
        (Side("train  ours: hold_out + tune_and_score", n_main), ours),
        (Side("train  bare: MLlib calls by hand", n_main), bare),
    ]
    jobs_by_phase: dict[str, list[dict[str, int]]] = {s.name: [] for s, _ in sides}

    def run(side: Side, fn):
        def go(_rep: int):
            PHASE_JOBS.clear()
            out = fn(main, test_start)
            jobs_by_phase[side.name].append(dict(PHASE_JOBS))
            return out

        return go

    try:
        with timed_methods(wrap, spark):
            say(f"train: warm-up on {n_warm:,} rows, one run of each side")
            for side, fn in sides:
                t = time.perf_counter()
                fn(warm, warm_start)
                say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
            say(f"train: timed runs, {args.repeats} per side, order alternating")
            with CpuWatch("the timed train runs", notes, say, note_always=True):
                runs = [(s, run(s, fn)) for s, fn in sides]
                last = alternate(args.repeats, runs, spark=spark, stages=True)
    finally:
        warm.unpersist()
        main.unpersist()
    got, want = last
    if got["best"] != want["best"]:
        raise BenchError(f"train: best params differ: ours {got['best']} vs bare {want['best']}")
    for name, value in want["metrics"].items():
        if abs(got["metrics"][name] - value) > 1e-9 * max(abs(value), 1e-300):
            raise BenchError(
                f"train: test {name} differs: ours {got['metrics'][name]!r} vs bare {value!r}"
            )
    if any(abs(a - b) > 1e-9 * abs(b) for a, b in zip(got["cv"], want["cv"], strict=True)):
        raise BenchError(
            f"train: CV means differ (not the same folds?): {got['cv']} vs {want['cv']}"
        )
    say(
        f"train: same answer: best {got['best']}, test metrics "
        + ", ".join(f"{k} {v:.6g}" for k, v in got["metrics"].items())
        + f" on {got['rows'][1]:,} test rows ({got['rows'][0]:,} training)"
    )
    o, b = sides[0][0], sides[1][0]
    SECONDARY["train_vs_bare_mllib"] = (
        f"by CPU s (least of the runs, this process + its JVM): {b.best_cpu / o.best_cpu:.2f}"
    )
    SECONDARY["train_vs_bare_mllib (phases)"] = _train_breakdown(o, b, jobs_by_phase)
    notes.append(
        f"train: {n_main:,} rows, grid {CV_GRID} (maxIter 50) x {CV_FOLDS} time folds, "
        f"parallelism {parallelism}; ours = jobs/train.py hold_out + tune_and_score (split, "
        f"caches, label summary, counts, folds, CV, test metrics, naive baselines, feature "
        f"weights); bare = split, approxQuantile folds, CrossValidator, {len(want['metrics'])} "
        "RegressionEvaluators on the test window; same best params, CV means and test metrics"
    )
    return [o, b], {"train_vs_bare_mllib": b.best / o.best}


def _train_breakdown(ours, bare, jobs_by_phase: dict[str, list[dict[str, int]]]) -> str:
    """Where ours' extra time goes: per phase, seconds and Spark jobs of each side's best run."""
    oi, bi = ours.times.index(ours.best), bare.times.index(bare.best)
    op, bp = ours.phases[oi], bare.phases[bi]
    oj, bj = jobs_by_phase[ours.name][oi], jobs_by_phase[bare.name][bi]
    cells = []
    for label in PHASE_ORDER:
        if label in op or label in bp:
            cells.append(
                f"{label}: ours {op.get(label, 0.0):.2f}s/{oj.get(label, 0)} jobs, "
                f"bare {bp.get(label, 0.0):.2f}s/{bj.get(label, 0)} jobs"
            )
    rest_o, rest_b = ours.best - sum(op.values()), bare.best - sum(bp.values())
    cells.append(f"the rest (driver, lazy plans): ours {rest_o:.2f}s, bare {rest_b:.2f}s")
    return (
        f"ours {ours.best:.2f}s in {ours.best_of(ours.jobs)} Spark jobs, bare {bare.best:.2f}s in "
        f"{bare.best_of(bare.jobs)} (+{ours.best - bare.best:.2f}s); by phase: " + "; ".join(cells)
    )


# --- 4. scoring ------------------------------------------------------------------------------


def bench_scoring(spark, args, data: dict[str, str], scratch: Path, model, notes: list[str]):
    from pyspark.sql import functions as F

    from lakeloop import delta_io
    from lakeloop.jobs.predict import observed_predictions
    from lakeloop.ml import pipeline as mlp
    from lakeloop.schemas import STATS_COLUMNS
    from lakeloop.transforms.modeling import (
        ERROR,
        PREDICTION_DATE,
        ScoringModel,
        scored_entities,
    )

    spec = model_spec()
    champion = ScoringModel(model, spec.name, 1, "bench" + uuid.uuid4().hex[:27])
    delta_path = str(scratch / "predictions")
    bare_path = str(scratch / "bare_scores")
    diag_path = str(scratch / "scored_parquet")

    def entities(which: str):
        return spark.read.parquet(data[which])

    def scored(which: str):
        return scored_entities(entities(which), champion, None, spec, KEY, TS, DAY)

    observed: dict = {}

    def ours(which: str) -> None:  # what predict does after loading the models
        df, counted = observed_predictions(scored(which))
        delta_io.replace_partition(
            df,
            delta_path,
            PREDICTION_DATE,
            DAY.isoformat(),
            f"bench-{which}",
            partition_by=PREDICTION_DATE,
            properties=delta_io.stats_properties(STATS_COLUMNS["predictions"]),
        )
        observed[which] = counted.get

    def bare(which: str) -> None:
        out = model.transform(entities(which)).select(KEY, mlp.PREDICTION)
        out.write.mode("overwrite").parquet(bare_path)

    def scored_parquet(which: str) -> None:
        scored(which).write.mode("overwrite").parquet(diag_path)

    floor_path = str(scratch / "floor_scores")

    def floor(which: str) -> None:
        """The bare side's rows written as predict must write a day: into a Delta table
        partitioned by the date, replacing that date (no statistics: the least Delta does)."""
        timing.replace_day(
            model.transform(entities(which)).select(KEY, mlp.PREDICTION),
            floor_path,
            PREDICTION_DATE,
            DAY,
            delta_io.stats_properties([]),
        )

    sides = [
        (Side("score  ours: scored_entities + replaceWhere", args.rows), ours),
        (Side("score  baseline: transform + key,pred parquet", args.rows), bare),
    ]
    if not args.no_diagnostics:
        sides.append((Side("score  diag: scored_entities -> parquet", args.rows), scored_parquet))
        sides.append((Side("score  floor: key,pred -> Delta replaceWhere", args.rows), floor))
    say("score: warm-up, one run of each side (ours creates the Delta table and the partition)")
    for side, fn in sides:
        t = time.perf_counter()
        fn("warm")
        say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
    say(
        f"score: timed runs on {args.rows:,} entities, {args.repeats} per side, order "
        "alternating (each of ours replaces the same prediction_date partition)"
    )
    with CpuWatch("the timed scoring runs", notes, say, note_always=True):
        runs = [(s, lambda _rep, fn=fn: fn("main")) for s, fn in sides]
        alternate(args.repeats, runs, spark=spark, stages=True)

    # same rows, same predictions (untimed)
    written = delta_io.read(spark, delta_path)
    got = written.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(F.col(PREDICTION_DATE) == F.lit(DAY), 1)).alias("day"),
        F.count(F.col(ERROR)).alias("errors"),
        F.sum("prediction").alias("s"),
    ).first()
    base = spark.read.parquet(bare_path).agg(F.count(F.lit(1)), F.sum(mlp.PREDICTION)).first()
    if got["n"] != args.rows or got["day"] != args.rows or got["errors"]:
        raise BenchError(
            f"score: the Delta table holds {got['n']} rows ({got['day']} of {DAY}, "
            f"{got['errors']} with _error), expected {args.rows} of {DAY}"
        )
    if base[0] != args.rows or abs(got["s"] - base[1]) > 1e-6 * max(1.0, abs(base[1])):
        raise BenchError(
            f"score: bare wrote {base[0]} rows, prediction sum {base[1]} vs ours {got['s']}"
        )
    # the counts and checksum predict records, taken while writing, are the written rows'
    rows, checksum = delta_io.checksum(written)
    if (observed["main"]["rows"], observed["main"]["checksum"]) != (rows, checksum):
        raise BenchError(
            f"score: observed while writing {observed['main']}, the table holds {rows} rows "
            f"with checksum {checksum}"
        )
    files = len(list(Path(delta_path).glob(f"{PREDICTION_DATE}=*/*.parquet")))
    say(
        f"score: correctness ok: {got['n']:,} rows of {DAY} in the Delta table, no _error, "
        f"prediction sums equal; {len(written.columns)} columns vs the bare side's 2"
    )
    notes.append(
        f"score: ours writes {len(written.columns)} columns ({', '.join(written.columns)}) to "
        f"Delta partitioned by {PREDICTION_DATE} (parquet files in the table incl. replaced "
        f"ones: {files}); bare writes {KEY} + prediction as Parquet"
    )
    ours_side, base_side = sides[0][0], sides[1][0]
    if len(sides) > 2:
        diag, floor_side = sides[2][0], sides[3][0]
        fl = delta_io.read(spark, floor_path).where(F.col(PREDICTION_DATE) == F.lit(DAY)).count()
        if fl != args.rows:
            raise BenchError(f"score: the floor side's day holds {fl} rows, expected {args.rows}")
        SECONDARY["scoring_vs_bare (split)"] = (
            f"extra columns + null checks (diag - bare) {diag.best - base_side.best:+.2f}s, "
            f"Delta partitioned replaceWhere vs Parquet (ours - diag) "
            f"{ours_side.best - diag.best:+.2f}s"
        )
        SECONDARY["scoring_vs_bare (floor)"] = timing.floor_text(
            base_side.best,
            floor_side,
            GOALS["scoring_vs_bare"],
            "the bare rows written to Delta, replacing the day",
            "out of reach for any write that replaces the day in Delta",
        )
    SECONDARY["scoring_vs_bare"] = (
        f"by CPU s (least of the runs, this process + its JVM): "
        f"{base_side.best_cpu / ours_side.best_cpu:.2f}"
    )
    return [s for s, _ in sides], {"scoring_vs_bare": base_side.best / ours_side.best}


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/train.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to fit and to score")
    p.add_argument(
        "--cv-rows",
        type=int,
        default=DEFAULT_CV_ROWS,
        help="about this many rows for the CV and train parts",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (best counts)")
    p.add_argument(
        "--cv-partitions",
        type=int,
        default=None,
        help="partitions the CV slice is cached in (default: Spark's cores, 2 here)",
    )
    p.add_argument(
        "--sizes",
        default=None,
        help="more row counts, comma-separated, to time the fit sides at for the MLlib/sklearn "
        "crossover (default: --rows / 10 and --rows / 3; '' for none)",
    )
    p.add_argument("--warmup-rows", type=int, default=WARMUP_ROWS, help="rows of the warm-ups")
    p.add_argument("--files", type=int, default=4, help="Parquet files the data is written in")
    p.add_argument("--skip-fit", action="store_true", help="no MLlib vs sklearn")
    p.add_argument("--skip-cv", action="store_true", help="no CrossValidator parallelism")
    p.add_argument("--skip-train", action="store_true", help="no train job vs bare MLlib")
    p.add_argument("--skip-scoring", action="store_true", help="no scoring")
    p.add_argument("--no-diagnostics", action="store_true", help="only the sides the ratios need")
    p.add_argument("--env", default="dev", help="config environment (its Spark settings)")
    p.add_argument("--driver-memory", default=None, help="spark.driver.memory (default: config)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    for name in ("rows", "cv_rows", "repeats", "warmup_rows", "files", "cv_partitions"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        sizes = (
            [args.rows // 10, args.rows // 3]
            if args.sizes is None
            else [int(v.replace("_", "")) for v in args.sizes.split(",") if v.strip()]
        )
    except ValueError:
        p.error(f"--sizes {args.sizes!r}: give row counts separated by commas, e.g. 100000,300000")
    if any(n < 1000 for n in sizes):
        p.error(f"--sizes {args.sizes}: each size must be at least 1000 rows")
    args.sizes = sorted(set(sizes) - {args.rows})
    if args.cv_rows > args.rows:
        p.error("--cv-rows must not exceed --rows (the CV slice is taken from them)")
    if args.skip_fit and args.skip_cv and args.skip_train and args.skip_scoring:
        p.error("nothing to do: every part is skipped")
    return args


def report(sides: list[Side], ratios: dict[str, float | None], notes: list[str]) -> None:
    secondary = [f"# secondary, {name}: {text}" for name, text in SECONDARY.items()]
    timing.print_report(
        sides, ratios, GOALS, notes, secondary=secondary, name_width=46, jobs_width=5
    )
    for name, value in METRICS.items():
        print(f"metric {name} {value}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)

    from lakeloop.config import load_config

    scratch = BENCH_ROOT / f"train-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    overrides: dict = {"lakehouse_root": str(scratch), "spark": {"shuffle_partitions": 2}}
    if args.driver_memory:
        overrides["spark"]["driver_memory"] = args.driver_memory
    cfg = load_config(args.env, overrides, project_root=ROOT)
    args.config_parallelism = cfg.training.parallelism
    say(
        f"scratch {scratch}; rows {args.rows:,}, cv rows ~{args.cv_rows:,}, repeats "
        f"{args.repeats}; spark {cfg.spark.master}, driver memory {cfg.spark.driver_memory}, "
        f"shuffle partitions {cfg.spark.shuffle_partitions}; load avg {os.getloadavg()[0]:.1f}"
    )

    data = {"warm": str(scratch / "data_warm"), "main": str(scratch / "data")}
    t = time.perf_counter()
    write_data(Path(data["warm"]), args.warmup_rows, 2, seed=11)
    write_data(Path(data["main"]), args.rows, args.files, seed=7)
    if not args.skip_fit:
        for n in args.sizes:
            data[size_key(n)] = str(scratch / f"data_{n}")
            write_data(Path(data[size_key(n)]), n, args.files, seed=7)
    size = sum(f.stat().st_size for f in Path(data["main"]).glob("*.parquet"))
    say(
        f"data: {args.rows:,} rows x {len(FEATURE_COLS)} features + key, ts, label in "
        f"{args.files} Parquet files ({size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s"
    )

    res = timing.Results()
    model = None
    with timing.spark_session(cfg, "lakeloop-bench-train", scratch, args.keep) as spark:
        if not args.skip_fit:
            out = res.part("fit", lambda: bench_fit(spark, args, data, res.notes))
            if out:
                res.sides += out[0]
                res.ratios.update(out[1])
                model = out[2]
        if not args.skip_cv:
            out = res.part("cv", lambda: bench_cv(spark, args, data, res.notes))
            if out:
                res.sides += out[0]
                res.ratios.update(out[1])
        if not args.skip_train:
            out = res.part("train", lambda: bench_train(spark, args, data, res.notes))
            if out:
                res.sides += out[0]
                res.ratios.update(out[1])
        if not args.skip_scoring:

            def scoring() -> tuple:
                m = model
                if m is None:  # the fit part was skipped or failed: fit the model untimed
                    from lakeloop.ml.pipeline import build_pipeline
                    from lakeloop.transforms.modeling import model_input

                    rows = model_input(spark.read.parquet(data["main"]), model_spec(), Y, TS)
                    m = build_pipeline(model_spec()).fit(rows)
                return bench_scoring(spark, args, data, scratch, m, res.notes)

            out = res.part("score", scoring)
            if out:
                res.sides += out[0]
                res.ratios.update(out[1])

    wanted = [] if args.skip_fit else ["mllib_vs_sklearn"]
    wanted += [] if args.skip_cv else ["cv_parallel_speedup"]
    wanted += [] if args.skip_train else ["train_vs_bare_mllib"]
    wanted += [] if args.skip_scoring else ["scoring_vs_bare"]
    return res.finish(wanted, report)


if __name__ == "__main__":
    sys.exit(main())
