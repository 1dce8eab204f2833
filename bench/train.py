"""make bench-train: lakeloop's model training and batch scoring against plain baselines.

1. the fit: `build_pipeline(ModelSpec)` (linear_regression, 8 numeric features, no grid: assembler
   -> LinearRegression, which standardizes inside MLlib) fit on `--rows` rows read by Spark from Parquet
   (`model_input` as the train job builds it), against scikit-learn's LinearRegression fit on the
   same Parquet read by pandas/pyarrow. Both sides time read + fit; both models' R^2 on the
   training rows are printed (and must agree).                       ratio `mllib_vs_sklearn`
2. tuning: CrossValidator over the same pipeline with a 6-point grid (regParam x elasticNetParam)
   and 3 time folds (`with_time_folds`, as the train job does) on a `--cv-rows` slice, cached in
   as many partitions as Spark has cores (`--cv-partitions`); parallelism=1 vs parallelism=2
   (each fit's Spark jobs can already use every core; p=2 fills the gaps). The value is
   time(p=1) / time(p=2).                                             ratio `cv_parallel_speedup`
3. scoring: `scored_entities` (champion only) + `delta_io.replace_partition` into a Delta table
   partitioned by prediction_date (what the predict job does, minus loading the model from
   MLflow) vs a bare `model.transform(df).select(key, prediction)` written as Parquet, on the
   same `--rows` entities. A third, diagnostic side writes scored_entities' output as Parquet
   (the extra columns without Delta).                                 ratio `scoring_vs_bare`

Each ratio is baseline seconds / our seconds for the same work (higher is better; for the CV
speedup, p=1 seconds / p=2 seconds), printed as one line `ratio <name> <value>`. The synthetic
data (seeded numpy: 8 numeric features, a linear label + noise, a key and a timestamp) is
written once to Parquet, untimed. One Spark session (config env `dev`); one warm-up run of every
side on small data first; timed runs alternate the order of the sides and the best of
`--repeats` (3) counts. The machine is small (2 cores): the CPU used by other processes during the
timed runs is reported alongside.

    .venv/bin/python bench/train.py [--rows N] [--cv-rows M] [--repeats R]
                                    [--skip-fit] [--skip-cv] [--skip-scoring] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
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
GOALS = {"mllib_vs_sklearn": 0.33, "cv_parallel_speedup": 1.5, "scoring_vs_bare": 0.85}
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


# --- timing ----------------------------------------------------------------------------------


@contextmanager
def timed_methods(targets: list[tuple[type, str, str]]) -> Iterator[None]:
    """Time calls of (class, method) into timing.PHASES under a label (pyspark's own classes are
    wrapped for the block; nothing in src/ changes)."""
    undo: list[Callable[[], None]] = []
    for cls, attr, label in targets:
        own = attr in cls.__dict__
        orig = getattr(cls, attr)

        def timed(self, *a, _orig=orig, _label=label, **kw):
            t = time.perf_counter()
            try:
                return _orig(self, *a, **kw)
            finally:
                add_phase(_label, time.perf_counter() - t)

        setattr(cls, attr, timed)
        undo.append(
            (lambda c=cls, n=attr, o=orig: setattr(c, n, o))
            if own
            else (lambda c=cls, n=attr: delattr(c, n))
        )
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


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
    return [s for s, _ in sides], ratios, ours_model


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


# --- 3. scoring ------------------------------------------------------------------------------


def bench_scoring(spark, args, data: dict[str, str], scratch: Path, model, notes: list[str]):
    from pyspark.sql import functions as F

    from lakeloop import delta_io
    from lakeloop.ml import pipeline as mlp
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

    def ours(which: str) -> None:
        delta_io.replace_partition(
            scored(which),
            delta_path,
            PREDICTION_DATE,
            DAY.isoformat(),
            f"bench-{which}",
            partition_by=PREDICTION_DATE,
        )

    def bare(which: str) -> None:
        out = model.transform(entities(which)).select(KEY, mlp.PREDICTION)
        out.write.mode("overwrite").parquet(bare_path)

    def scored_parquet(which: str) -> None:
        scored(which).write.mode("overwrite").parquet(diag_path)

    sides = [
        (Side("score  ours: scored_entities + replaceWhere", args.rows), ours),
        (Side("score  baseline: transform + key,pred parquet", args.rows), bare),
    ]
    if not args.no_diagnostics:
        sides.append((Side("score  diag: scored_entities -> parquet", args.rows), scored_parquet))
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
        diag = sides[2][0]
        SECONDARY["scoring_vs_bare (split)"] = (
            f"extra columns + null checks (diag - bare) {diag.best - base_side.best:+.2f}s, "
            f"Delta partitioned replaceWhere vs Parquet (ours - diag) "
            f"{ours_side.best - diag.best:+.2f}s"
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
        "--cv-rows", type=int, default=DEFAULT_CV_ROWS, help="about this many rows for the CV"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (best counts)")
    p.add_argument(
        "--cv-partitions",
        type=int,
        default=None,
        help="partitions the CV slice is cached in (default: Spark's cores, 2 here)",
    )
    p.add_argument("--warmup-rows", type=int, default=WARMUP_ROWS, help="rows of the warm-ups")
    p.add_argument("--files", type=int, default=4, help="Parquet files the data is written in")
    p.add_argument("--skip-fit", action="store_true", help="no MLlib vs sklearn")
    p.add_argument("--skip-cv", action="store_true", help="no CrossValidator parallelism")
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
    if args.cv_rows > args.rows:
        p.error("--cv-rows must not exceed --rows (the CV slice is taken from them)")
    if args.skip_fit and args.skip_cv and args.skip_scoring:
        p.error("nothing to do: every part is skipped")
    return args


def report(sides: list[Side], ratios: dict[str, float | None], notes: list[str]) -> None:
    secondary = [f"# secondary, {name}: {text}" for name, text in SECONDARY.items()]
    timing.print_report(
        sides, ratios, GOALS, notes, secondary=secondary, name_width=46, jobs_width=5
    )


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
    wanted += [] if args.skip_scoring else ["scoring_vs_bare"]
    return res.finish(wanted, report)


if __name__ == "__main__":
    sys.exit(main())
