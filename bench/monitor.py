"""make bench-monitor: lakeloop's drift statistics in Spark against pandas + a drift library.

The data: `--features` (20) features, 40% normal, 40% lognormal (skewed), 20% categorical
(strings, 5 to 40 categories), generated in Spark (`spark.range` + `rand`/`randn`) and written
to Parquet in the scratch folder first (untimed): a `--reference-rows` reference (default: as
many as `--rows`) and a `--rows` current day in which a quarter of the features has drifted.

- ours: the monitor's per-day work, `drift.current_profile` (one approxQuantile pass for the
  2000-point grids, one Bucketizer + groupBy pass for the bucket/category counts) of the day's
  Parquet against the reference profile, then `drift.compare` per feature (PSI over the
  reference deciles, KS D, normalised Wasserstein; Jensen-Shannon + chi-square p for the
  categoricals). The reference profile is built at training time: `drift.profile` is timed
  once on its own and printed, not part of the ratio.
- baseline: `toPandas()` (Arrow on) of the reference and of the day, then the same statistics by
  Evidently 0.7.23's stattests on one core: PSI (its own binning), Wasserstein (normed), scipy's
  `ks_2samp` D for the numeric features; Jensen-Shannon (Evidently) and scipy's
  `chi2_contingency` for the categoricals. A pandas job has no reference profile to reuse, so it
  loads the reference too; a secondary ratio leaves that load out.

The ratio is baseline seconds / our seconds (higher is better), printed as
`ratio monitor_vs_pandas_library <value>`. Sides alternate; the best of `--repeats` counts.
With `--report PATH` the size of that HTML file is printed as `metric report_html_kb <size>`.

    .venv/bin/python bench/monitor.py [--rows N] [--reference-rows M] [--features F]
                                      [--repeats R] [--report PATH] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import timing
from cpu_watch import CpuWatch
from timing import BenchError, Side, add_phase, alternate, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
GOALS = {"monitor_vs_pandas_library": 1.5}
DEFAULT_ROWS = 2_000_000
SECONDARY: dict[str, str] = {}


# --- data ------------------------------------------------------------------------------------


def feature_plan(n: int) -> list[tuple[str, str, int]]:
    """(name, kind, index) for n features: 40% normal, 40% lognormal, the rest categorical."""
    n_cat = max(1, n // 5)
    n_norm = (n - n_cat + 1) // 2
    out = []
    for i in range(n):
        kind = "normal" if i < n_norm else "lognormal" if i < n - n_cat else "categorical"
        out.append((f"f{i:02d}_{kind[:4]}", kind, i))
    return out


def write_data(spark, path: Path, rows: int, plan, seed: int, drifted: bool) -> None:
    """rows rows of the plan's features; with `drifted`, every 4th feature is shifted (normal:
    +0.3 sd, lognormal: x1.35, categorical: mass moved to the first category). ~0.5% nulls."""
    from pyspark.sql import functions as F

    cols = []
    for name, kind, i in plan:
        moved = drifted and i % 4 == 0
        z = F.randn(seed * 1000 + i)
        u = F.rand(seed * 1000 + 500 + i)
        if kind == "normal":
            v = z * (1 + i) + 10 * i + (0.3 * (1 + i) if moved else 0.0)
        elif kind == "lognormal":
            v = F.exp(z * 1.2) * (1.35 if moved else 1.0)
        else:
            k = 5 + 7 * (i % 6)
            idx = F.floor(F.pow(u, 1.6 if moved else 1.0) * k).cast("int")
            v = F.concat(F.lit("c"), idx.cast("string"))
        cols.append(F.when(F.rand(seed * 1000 + 900 + i) < 0.005, None).otherwise(v).alias(name))
    spark.range(rows).select(*cols).write.mode("overwrite").parquet(str(path))


# --- the two sides ---------------------------------------------------------------------------


def ours(spark, path: str, ref_profile) -> dict:
    from lakeloop.monitoring import drift

    t = time.perf_counter()
    cur = drift.current_profile(spark.read.parquet(path), ref_profile)
    add_phase("current_profile", time.perf_counter() - t)
    t = time.perf_counter()
    out = {f: drift.compare(ref_profile[f], cur[f]) for f in ref_profile}
    add_phase("compare", time.perf_counter() - t)
    return out


def baseline(spark, ref_path: str, cur_path: str, plan, preloaded=None) -> dict:
    import numpy as np
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (
        _wasserstein_distance_norm,
    )
    from evidently.legacy.core import ColumnType
    from scipy.stats import chi2_contingency, ks_2samp

    t = time.perf_counter()
    ref = preloaded if preloaded is not None else spark.read.parquet(ref_path).toPandas()
    cur = spark.read.parquet(cur_path).toPandas()
    add_phase("toPandas", time.perf_counter() - t)
    t = time.perf_counter()
    out = {}
    for name, kind, _ in plan:
        r, c = ref[name].dropna(), cur[name].dropna()
        if kind == "categorical":
            js = _jensenshannon(r, c, ColumnType.Categorical, 0.1)[0]
            keys = sorted(set(r.unique()) | set(c.unique()))
            table = np.vstack(
                [
                    r.value_counts().reindex(keys, fill_value=0).to_numpy(),
                    c.value_counts().reindex(keys, fill_value=0).to_numpy(),
                ]
            )
            out[name] = {"js": float(js), "chi2_p": float(chi2_contingency(table).pvalue)}
        else:
            out[name] = {
                "psi": float(_psi(r, c, ColumnType.Numerical, 0.1)[0]),
                "ks": float(ks_2samp(r.to_numpy(), c.to_numpy()).statistic),
                "wasserstein": float(
                    _wasserstein_distance_norm(r, c, ColumnType.Numerical, 0.1)[0]
                ),
            }
    add_phase("statistics", time.perf_counter() - t)
    return out


def agreement(ours_out: dict, base: dict, plan, notes: list[str]) -> None:
    """Ours and the library's KS D / Wasserstein agree (the PSI differs by design: deciles vs
    Evidently's equal-width bins, both printed)."""
    ks = [abs(ours_out[n].ks - base[n]["ks"]) for n, k, _ in plan if k != "categorical"]
    w = [
        abs(ours_out[n].wasserstein - base[n]["wasserstein"])
        for n, k, _ in plan
        if k != "categorical"
    ]
    js = [abs(ours_out[n].jensen_shannon - base[n]["js"]) for n, k, _ in plan if k == "categorical"]
    say(
        f"agreement: KS D max |diff| {max(ks):.2e}, normalised Wasserstein max |diff| {max(w):.2e}, "
        f"JS max |diff| {max(js):.2e} (JS over the categories; ours adds the null bin)"
    )
    if max(ks) > 2e-3:
        raise BenchError(f"KS D differs from scipy's by {max(ks):.2e} (> 2e-3)")
    drifted = [n for n, _, i in plan if i % 4 == 0]
    lines = [
        f"{n}: ours psi {ours_out[n].psi:.4f}"
        + (f" / evidently psi {base[n]['psi']:.4f}" if "psi" in base[n] else "")
        for n in drifted
    ]
    notes.append("drifted features: " + "; ".join(lines))
    calm = max(ours_out[n].psi for n, _, i in plan if i % 4)
    notes.append(f"largest decile PSI of an undrifted feature: {calm:.4f}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/monitor.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="current (day) rows")
    p.add_argument("--reference-rows", type=int, default=None, help="default: --rows")
    p.add_argument("--features", type=int, default=20, help="features (>= 5)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per side (best counts)")
    p.add_argument("--files", type=int, default=4, help="Parquet files per data set")
    p.add_argument("--skip-baseline", action="store_true", help="time lakeloop only")
    p.add_argument("--report", type=Path, default=None, help="print this HTML file's size")
    p.add_argument("--env", default="dev", help="config environment (its Spark settings)")
    p.add_argument("--driver-memory", default="3g", help="spark.driver.memory (toPandas)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    args.reference_rows = args.reference_rows or args.rows
    for name in ("rows", "reference_rows", "repeats", "files"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.features < 5:
        p.error("--features must be at least 5")
    if args.report is not None and not args.report.is_file():
        p.error(f"--report {args.report}: no such file")
    return args


def report(sides: list[Side], ratios: dict[str, float | None], notes: list[str]) -> None:
    secondary = [f"# secondary, {name}: {text}" for name, text in SECONDARY.items()]
    timing.print_report(sides, ratios, GOALS, notes, secondary=secondary, name_width=48)


def run(spark, args, scratch: Path, res: timing.Results) -> None:
    from lakeloop.monitoring import drift

    plan = feature_plan(args.features)
    numeric = [n for n, k, _ in plan if k != "categorical"]
    categorical = [n for n, k, _ in plan if k == "categorical"]
    paths = {k: str(scratch / k) for k in ("reference", "current", "warm_ref", "warm_cur")}
    t = time.perf_counter()
    write_data(spark, Path(paths["reference"]), args.reference_rows, plan, seed=1, drifted=False)
    write_data(spark, Path(paths["current"]), args.rows, plan, seed=2, drifted=True)
    write_data(spark, Path(paths["warm_ref"]), 20_000, plan, seed=3, drifted=False)
    write_data(spark, Path(paths["warm_cur"]), 20_000, plan, seed=4, drifted=True)
    say(
        f"data: reference {args.reference_rows:,} rows, current {args.rows:,} rows x "
        f"{len(plan)} features ({len(numeric)} numeric, {len(categorical)} categorical) "
        f"written to Parquet in {time.perf_counter() - t:.1f}s"
    )

    t = time.perf_counter()
    warm_ref = drift.profile(spark.read.parquet(paths["warm_ref"]), numeric, categorical)
    ours(spark, paths["warm_cur"], warm_ref)
    if not args.skip_baseline:
        baseline(spark, paths["warm_ref"], paths["warm_cur"], plan)
    say(f"warm-up on 20,000 rows, one run of each side, {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    ref_profile = drift.profile(spark.read.parquet(paths["reference"]), numeric, categorical)
    ref_s = time.perf_counter() - t
    say(f"reference profile (training time, not in the ratio): {ref_s:.2f}s")
    res.notes.append(
        f"reference profile of {args.reference_rows:,} rows (drift.profile, built at training "
        f"time, untimed in the ratio): {ref_s:.2f}s"
    )

    sides: list[tuple[Side, object]] = [
        (
            Side("ours: current_profile + compare", args.rows),
            lambda _rep: ours(spark, paths["current"], ref_profile),
        )
    ]
    if not args.skip_baseline:
        sides.append(
            (
                Side("baseline: toPandas x2 + evidently/scipy", args.rows),
                lambda _rep: baseline(spark, paths["reference"], paths["current"], plan),
            )
        )
    say(f"timed runs, {args.repeats} per side, order alternating")
    with CpuWatch("the timed runs", res.notes, say, note_always=True):
        last = alternate(args.repeats, sides, spark=spark, stages=True)
    res.sides += [s for s, _ in sides]
    if args.skip_baseline:
        return
    agreement(last[0], last[1], plan, res.notes)
    ours_side, base_side = sides[0][0], sides[1][0]
    res.ratios["monitor_vs_pandas_library"] = base_side.best / ours_side.best
    phases = base_side.best_of(base_side.phases) or {}
    stats_only = phases.get("statistics")
    if stats_only:
        SECONDARY["monitor_vs_pandas_library"] = (
            f"with the reference already in pandas memory (the library's statistics + the "
            f"day's toPandas only): {(base_side.best - phases.get('toPandas', 0) / 2) / ours_side.best:.2f} "
            f"(approx.: half the toPandas time counted); statistics alone "
            f"{stats_only / ours_side.best:.2f}; by CPU s {base_side.best_cpu / ours_side.best_cpu:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)

    from lakeloop.config import load_config

    scratch = BENCH_ROOT / f"monitor-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    overrides: dict = {
        "lakehouse_root": str(scratch),
        "spark": {"shuffle_partitions": 2, "driver_memory": args.driver_memory},
    }
    cfg = load_config(args.env, overrides, project_root=ROOT)
    say(
        f"scratch {scratch}; rows {args.rows:,} vs reference {args.reference_rows:,}, "
        f"{args.features} features, repeats {args.repeats}; spark {cfg.spark.master}, driver "
        f"memory {cfg.spark.driver_memory}; load avg {os.getloadavg()[0]:.1f}"
    )
    res = timing.Results()
    with timing.spark_session(cfg, "lakeloop-bench-monitor", scratch, args.keep) as spark:
        spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
        res.part("monitor", lambda: run(spark, args, scratch, res))
    wanted = [] if args.skip_baseline else ["monitor_vs_pandas_library"]
    status = res.finish(wanted, report)
    # the run report's size (its one plotly.min.js beside it is shared by every page): the page
    # given, else the newest page `make demo` wrote into the dev lakehouse
    page = args.report or _newest_page(load_config(args.env, project_root=ROOT))
    if page is None:
        print("metric report_html_kb n/a (no run report yet: `make demo` writes one)")
    else:
        print(f"metric report_html_kb {page.stat().st_size / 1024:.1f}  ({page})")
    return status


def _newest_page(cfg) -> Path | None:
    pages = sorted(
        (Path(cfg.lakehouse_root) / "reports").glob("*/html/[0-9]*.html"),
        key=lambda p: p.stat().st_mtime,
    )
    return pages[-1] if pages else None


if __name__ == "__main__":
    sys.exit(main())
