"""make bench-validate: the validate gate and the point-in-time join against plain baselines.

1. the row-level gate: a ~20-check GX suite compiled by `lakeloop.quality.rules`
   (`with_rule_failures` + ONE aggregation giving rows, passed rows and per-rule failure counts,
   i.e. what the validate job needs from its pass) on `--rows` listings read from a Delta table,
   against
     - one bare scan of the same columns (`df.agg(count, max(col) for each suite column)`):
                                                                    ratio `gate_vs_one_scan`
     - GX's own default validation of the same expectations on the same DataFrame (ephemeral
       context, Spark data source, whole-DataFrame batch, `batch.validate(suite)`, default
       result format SUMMARY, default persist=True):             ratio `gate_vs_gx_default`
   GX's per-expectation unexpected counts must equal our per-rule failure counts.
2. the training set: `point_in_time_training_set` with `label_date_bounds` (partition pruning on
   `feature_date`), on a Delta feature table partitioned by day over a long history and labels
   from a short recent window, against
     - a range join doing the same: the same label date bounds and `feature_date` pruning
       (`pruned_features`), a left join on the key with `label_time - lookback <= feature_ts
       <= label_time`, then the latest feature row per label (`row_number` over a window, the
       same tie rule). Its rows must equal ours (count + `delta_io.checksum`), checked on the
       warm-up and the main tables before timing:               ratio `pit_vs_range_join`
     - `naive_latest_join` (reads every feature row, leaks the future; a different answer),
       for reference:                                              ratio `pit_vs_naive_join`
   Two floor sides bound what any point-in-time join can gain on the range join: the read
   floor reads what any join of these rows must read (the labels and the look-back's feature
   rows, same pruning, every column; the label date bounds given) and joins nothing; the join
   floor is the cheapest join Spark does of the same rows on the key alone (a shuffled hash
   join: every pair of a label and a feature row of its entity, no time condition, no ranking,
   so less work than any point-in-time join that Spark runs).

Each ratio is baseline seconds / our seconds (higher is better), printed as one line
`ratio <name> <value>`. One Spark session (config env `test`); every side reads its input from
disk (nothing cached); one small warm-up run of every side first; timed runs alternate the order
of the sides and the best of `--repeats` counts. The machine is small (2 cores): the CPU used by
other processes during the timed runs is reported alongside.

    .venv/bin/python bench/validate.py [--rows N] [--repeats R] [--skip-gx] [--skip-pit] [--keep]
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
from timing import PHASES, BenchError, Side, alternate, say

ROOT = Path(__file__).resolve().parents[1]
BENCH_ROOT = ROOT / ".bench"
GOALS = {
    "gate_vs_one_scan": 0.8,
    "gate_vs_gx_default": 3.0,
    "pit_vs_range_join": 2.0,
}  # pit_vs_naive_join: a reference (a different, leaky answer)
DEFAULT_ROWS = 1_000_000
WARMUP_ROWS = 20_000

# The point-in-time scenario (see --help for the knobs).
PIT_END = dt.date(2026, 1, 1)  # history and label window end here (exclusive)

BOUNDS = "label date bounds (1 agg over the labels, as build_training_set does)"
SECONDARY: dict[str, float] = {}  # other views of the ratios, printed as comments only


# --- 1. the gate -----------------------------------------------------------------------------


def suite() -> dict:
    """~20 row-level expectations on the listings columns (all types the compiler knows, but
    `..._to_be_unique`, which needs a shuffle)."""

    def e(etype: str, column: str, **kw) -> dict:
        return {"type": f"expect_column_values_to_{etype}", "kwargs": {"column": column, **kw}}

    conditions = ["poor", "fair", "good", "excellent", "Poor", "Fair", "Good", "Excellent"]
    return {
        "name": "bench_listings",
        "meta": {"version": "bench"},
        "expectations": [
            e("be_null", "_error"),
            e("not_be_null", "listing_id"),
            e("not_be_null", "listed_at"),
            e("not_be_null", "zipcode"),
            e("not_be_null", "sqft"),
            e("not_be_null", "price"),
            e("match_regex", "listing_id", regex="^L[0-9]{8}-[0-9]{6}$"),
            e("not_match_regex", "listing_id", regex="TEST"),
            e("match_regex", "zipcode", regex="^\\s*[0-9]{5}\\s*$"),
            e("not_be_in_set", "zipcode", value_set=["00000", "99999"]),
            e("be_between", "sqft", min_value=100, max_value=200000),
            e("be_between", "bedrooms", min_value=0, max_value=30),
            e("be_between", "bathrooms", min_value=0, max_value=30),
            e("be_between", "year_built", min_value=1700, max_value=2100),
            e("be_between", "lot_sqft", min_value=0, max_value=10000000),
            e("be_between", "price", min_value=1000, max_value=100000000),
            e("be_between", "latitude", min_value=-90, max_value=90),
            e("be_between", "longitude", min_value=-180, max_value=180),
            e("be_between", "garage_spaces", min_value=0, max_value=10),
            e("be_in_set", "stories", value_set=[1, 2, 3, 4]),
            e("be_in_set", "condition", value_set=conditions),
        ],
    }


def _u(seed: int, m: int):
    """A pseudo-random int in [0, m) per row of spark.range (deterministic)."""
    from pyspark.sql import functions as F

    return F.pmod(F.hash(F.col("id"), F.lit(seed)), F.lit(m))


def _bad(seed: int, one_in: int):
    return _u(seed, one_in) == 0


def listings(spark, n: int):
    """n listings shaped like bronze.houses_listings; each rule fails on ~0.02-0.2% of rows."""
    from pyspark.sql import functions as F

    i = F.col("id")
    good_id = F.format_string("L%08d-%06d", F.floor(i / 1_000_000), i % 1_000_000)
    listing_id = (
        F.when(_bad(1, 5000), F.lit(None))
        .when(_bad(2, 1000), F.format_string("X%d", i))
        .when(_bad(3, 2000), F.concat(good_id, F.lit("-TEST")))
        .otherwise(good_id)
    )
    zipcode = (
        F.when(_bad(4, 4000), F.lit(None))
        .when(_bad(5, 1000), F.lit("ABCDE"))
        .when(_bad(6, 2000), F.lit("99999"))
        .otherwise(F.format_string("%05d", F.lit(10000) + _u(7, 89000)))
    )

    def num(good, seed: int, bad_value, one_in: int = 1000, null_one_in: int | None = None):
        c = F.when(_bad(seed, one_in), F.lit(bad_value)).otherwise(good)
        if null_one_in:
            c = F.when(_bad(seed + 100, null_one_in), F.lit(None)).otherwise(c)
        return c

    conditions = F.array(*[F.lit(c) for c in ("poor", "fair", "good", "excellent", "Good")])
    return spark.range(n).select(
        listing_id.alias("listing_id"),
        F.when(_bad(8, 5000), F.lit(None))
        .otherwise(F.timestamp_seconds(F.lit(1_735_689_600) + _u(9, 365 * 86400)))
        .alias("listed_at"),
        zipcode.alias("zipcode"),
        num(F.lit(500) + _u(10, 5000), 11, 50, null_one_in=3000).cast("int").alias("sqft"),
        num(_u(12, 7), 13, 99).cast("int").alias("bedrooms"),
        num(_u(14, 9) / 2.0, 15, -1.0).cast("double").alias("bathrooms"),
        num(F.lit(1900) + _u(16, 125), 17, 1500).cast("int").alias("year_built"),
        num(_u(18, 200_000), 19, -5).cast("int").alias("lot_sqft"),
        F.when(_bad(20, 3000), F.lit(None))
        .when(_bad(21, 1000), F.lit("unknown"))
        .otherwise(F.element_at(conditions, (_u(22, 5) + 1).cast("int")))
        .alias("condition"),
        num(F.lit(50_000.0) + _u(23, 2_000_000), 24, 10.0, null_one_in=2000)
        .cast("double")
        .alias("price"),
        num(F.lit(25.0) + _u(25, 2_400_000) / 1e5, 26, 123.0, 5000).alias("latitude"),
        num(F.lit(-125.0) + _u(27, 5_800_000) / 1e5, 28, -200.0, 5000).alias("longitude"),
        num(_u(29, 4), 30, 12, 2000).cast("int").alias("garage_spaces"),
        num(_u(31, 3) + 1, 32, 7, 2000).cast("int").alias("stories"),
        F.when(_bad(33, 1000), F.format_string("malformed record at line %d", i)).alias("_error"),
        F.lit("bench.csv").alias("_source_file"),
    )


def gx_expectations(gx_suite_dict: dict) -> list:
    """GX Expectation objects built one by one (get_expectation_impl(type)(**kwargs)), so an
    invalid one raises instead of being dropped by ExpectationSuite."""
    from lakeloop.quality.gx_runner import _build_expectations

    built = _build_expectations(gx_suite_dict)
    if len(built) != len(gx_suite_dict["expectations"]):
        raise BenchError(
            f"built {len(built)} of {len(gx_suite_dict['expectations'])} GX expectations"
        )
    return built


def bench_gate(spark, args, scratch: Path, notes: list[str]) -> tuple[list[Side], dict]:
    from pyspark.sql import functions as F

    from lakeloop.quality.rules import FAILED, compile_suite, with_rule_failures

    suite_dict = suite()
    compiled = compile_suite(suite_dict, "bench suite")
    rules = compiled.row_rules
    if len(rules) != len(suite_dict["expectations"]):
        raise BenchError(f"compiled {len(rules)} row rules of {len(suite_dict['expectations'])}")
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise BenchError("rule names are not unique: the GX/ours comparison keys on them")
    columns = list(dict.fromkeys(r.column for r in rules))

    paths = {"warm": str(scratch / "listings_warm"), "main": str(scratch / "listings")}
    t = time.perf_counter()
    listings(spark, WARMUP_ROWS).write.format("delta").save(paths["warm"])
    listings(spark, args.rows).write.format("delta").save(paths["main"])
    read = {k: (lambda p=p: spark.read.format("delta").load(p)) for k, p in paths.items()}
    size = sum(f.stat().st_size for f in Path(paths["main"]).glob("*.parquet"))
    say(
        f"gate: {args.rows:,} listings written as Delta ({size / 1e6:.0f} MB, "
        f"{len(read['main']().columns)} columns) in {time.perf_counter() - t:.1f}s; "
        f"suite of {len(rules)} row-level rules over {len(columns)} columns"
    )

    def ours(which: str) -> dict[str, int]:
        gated = with_rule_failures(read[which](), rules)
        aggs = [
            F.count(F.lit(1)).alias("rows"),
            F.count(F.when(F.size(FAILED) == 0, 1)).alias("passed"),
            *[
                F.count(F.when(F.array_contains(FAILED, n), 1)).alias(f"r{i}")
                for i, n in enumerate(names)
            ],
        ]
        row = gated.agg(*aggs).collect()[0]
        return {"rows": row["rows"], "passed": row["passed"]} | {
            n: row[f"r{i}"] for i, n in enumerate(names)
        }

    def one_scan(which: str) -> int:
        df = read[which]()
        row = df.agg(F.count(F.lit(1)), *[F.max(c) for c in columns]).collect()[0]
        return row[0]

    gx_state: dict = {}

    def gx_default(which: str) -> dict[str, int]:
        import great_expectations as gx

        if not gx_state:
            from lakeloop.quality.gx_runner import _new_context

            context = _new_context(None)  # ephemeral, no progress bars, no analytics
            tag = uuid.uuid4().hex[:8]
            gx_state["bd"] = (
                context.data_sources.add_spark(name=f"bench_spark_{tag}")
                .add_dataframe_asset(name="listings")
                .add_batch_definition_whole_dataframe("whole")
            )
            exps = gx_expectations(suite_dict)
            gx_state["suite"] = gx.ExpectationSuite(name="bench_listings", expectations=exps)
            if len(gx_state["suite"].expectations) != len(exps):
                raise BenchError(
                    f"ExpectationSuite kept {len(gx_state['suite'].expectations)} of "
                    f"{len(exps)} expectations"
                )
        df = read[which]()
        try:
            batch = gx_state["bd"].get_batch(batch_parameters={"dataframe": df})
            result = batch.validate(gx_state["suite"])
        finally:
            df.unpersist()  # GX persists the batch (persist=True default) and never unpersists
        return gx_counts(result, len(rules))

    def check(label: str, want_rows: int, got: dict[str, int], gx: dict[str, int] | None) -> None:
        if got["rows"] != want_rows:
            raise BenchError(f"{label}: ours counted {got['rows']} rows, expected {want_rows}")
        failing = {n: got[n] for n in names}
        say(
            f"{label}: {got['rows']:,} rows, {got['passed']:,} pass every rule; failures per "
            f"rule {min(failing.values()):,}..{max(failing.values()):,}"
        )
        if gx is None:
            return
        bad = {n: (failing[n], gx.get(n)) for n in names if failing[n] != gx.get(n)}
        extra = sorted(set(gx) - set(names))
        if bad or extra:
            for n, (o, g) in bad.items():
                print(f"MISMATCH {label}: {n}: ours {o} failing rows, GX {g} unexpected")
            for n in extra:
                print(f"MISMATCH {label}: GX ran {n}, which ours did not")
            raise BenchError(f"{label}: GX's unexpected counts differ from ours (see above)")
        say(f"{label}: GX's unexpected counts equal ours for all {len(names)} expectations")

    sides = [
        (Side("gate  ours: with_rule_failures + 1 agg", args.rows), ours),
        (Side("gate  baseline: one bare scan (agg)", args.rows), one_scan),
    ]
    if not args.skip_gx:
        sides.append((Side("gate  baseline: GX default batch.validate", args.rows), gx_default))

    say(f"gate: warm-up, one run of each side on {WARMUP_ROWS:,} rows")
    warm = {}
    for side, fn in sides:
        t = time.perf_counter()
        warm[side.name] = fn("warm")
        say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
    gx_warm = warm.get(sides[2][0].name) if len(sides) > 2 else None
    check("gate warm-up", WARMUP_ROWS, warm[sides[0][0].name], gx_warm)

    # Delta replays the new table's log on its first scan (extra Spark jobs): do it untimed
    read["main"]().agg(F.max("listing_id")).collect()
    say(f"gate: timed runs on {args.rows:,} rows, {args.repeats} per side, order alternating")
    with CpuWatch("the timed gate runs", notes, say, note_always=True):
        runs = [(s, lambda _rep, fn=fn: fn("main")) for s, fn in sides]
        last = alternate(args.repeats, runs, spark=spark)
    if last[1] != args.rows:
        raise BenchError(f"one-scan counted {last[1]} rows, expected {args.rows}")
    check("gate", args.rows, last[0], last[2] if len(last) > 2 else None)

    notes.append(
        f"gate sides: ours = with_rule_failures({len(rules)} rules) + one agg (rows, passed, "
        f"failures per rule); one scan = count + max of each of the {len(columns)} suite "
        "columns; GX = get_batch + batch.validate(suite) (result format SUMMARY, the Spark "
        "data source's default persist=True, unpersisted after), context and suite built once"
    )
    ours_side = sides[0][0]
    ratios = {"gate_vs_one_scan": sides[1][0].best / ours_side.best}
    SECONDARY["gate_vs_one_scan"] = sides[1][0].best_cpu / ours_side.best_cpu
    if not args.skip_gx:
        ratios["gate_vs_gx_default"] = sides[2][0].best / ours_side.best
        SECONDARY["gate_vs_gx_default"] = sides[2][0].best_cpu / ours_side.best_cpu
    return [s for s, _ in sides], ratios


def gx_counts(result, expected: int) -> dict[str, int]:
    """rule name (as lakeloop.quality.rules names it) -> GX's unexpected_count."""
    if len(result.results) != expected:
        raise BenchError(f"GX ran {len(result.results)} expectations, expected {expected}")
    out = {}
    for r in result.results:
        cfg = r.expectation_config
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise BenchError(f"GX raised on {cfg.type}: {r.exception_info}")
        for info in (r.exception_info or {}).values():
            if isinstance(info, dict) and info.get("raised_exception"):
                raise BenchError(f"GX raised on {cfg.type}: {info.get('exception_message')}")
        out[f"{cfg.type}({cfg.kwargs['column']})"] = int(r.result["unexpected_count"])
    return out


# --- 2. point-in-time training set -----------------------------------------------------------


def pit_tables(spark, n_features: int, n_entities: int, n_labels: int, days: int, window: int):
    """Feature rows spread uniformly over `days` days before PIT_END (n_entities entities),
    labels spread over the last `window` days."""
    from pyspark.sql import functions as F

    end = int(dt.datetime(PIT_END.year, PIT_END.month, PIT_END.day, tzinfo=dt.UTC).timestamp())
    features = (
        spark.range(n_features)
        .select(
            F.format_string("L%08d", F.col("id") % n_entities).alias("listing_id"),
            F.timestamp_seconds(F.lit(end - days * 86400) + _u(41, days * 86400)).alias(
                "feature_ts"
            ),
            (F.lit(500) + _u(42, 5000)).cast("int").alias("sqft"),
            _u(43, 7).cast("int").alias("bedrooms"),
            (_u(44, 90_000) / 100.0).alias("price_per_sqft"),
            (F.lit(100_000.0) + _u(45, 900_000)).alias("zip_median_price"),
            _u(46, 20).cast("int").alias("zip_sales_90d"),
        )
        .withColumn("feature_date", F.to_date("feature_ts"))
    )
    labels = spark.range(n_labels).select(
        F.col("id").alias("sale_id"),
        F.format_string("L%08d", _u(51, n_entities)).alias("listing_id"),
        F.timestamp_seconds(F.lit(end - window * 86400) + _u(52, window * 86400)).alias("sold_at"),
        (F.lit(100_000.0) + _u(53, 2_000_000)).alias("sale_price"),
    )
    return features, labels


def range_join_training_set(
    labels,
    features,
    entity_key: str,
    label_time: str,
    feature_time: str,
    lookback_days: int,
    feature_date: str,
    label_date_bounds: tuple[dt.date, dt.date],
):
    """The textbook point-in-time join, as the baseline: the features pruned to the labels'
    dates as `point_in_time_training_set` prunes them, a left range join (same key,
    `label_time - lookback <= feature_time <= label_time`), then per label row the matching
    feature row with the latest feature_time (ties: the largest struct of the feature columns,
    the rule of `point_in_time_training_set`). Same output: the label columns, the feature
    columns, `_has_features`. Assumes non-null keys and label times (the bench's data)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakeloop.transforms.training import HAS_FEATURES, pruned_features

    feature_cols = [c for c in features.columns if c != entity_key]
    pruned = pruned_features(features, feature_date, label_date_bounds, lookback_days)
    f = pruned.select(
        F.col(entity_key).alias("__rj_key"),
        F.col(feature_time).alias("__rj_time"),
        F.struct(*feature_cols).alias("__rj_feature"),
    )
    lab = labels.withColumn("__rj_label", F.monotonically_increasing_id())
    t = F.col(label_time)
    on = (
        (F.col(entity_key) == F.col("__rj_key"))
        & (F.col("__rj_time") <= t)
        & (F.col("__rj_time") >= t - F.make_dt_interval(days=F.lit(lookback_days)))
    )
    w = Window.partitionBy("__rj_label").orderBy(
        F.col("__rj_time").desc_nulls_last(), F.col("__rj_feature").desc_nulls_last()
    )
    return (
        lab.join(f, on, "left")
        .withColumn("__rj_n", F.row_number().over(w))
        .where(F.col("__rj_n") == 1)
        .select(
            *labels.columns,
            *[F.col("__rj_feature").getField(c).alias(c) for c in feature_cols],
            F.col("__rj_feature").isNotNull().alias(HAS_FEATURES),
        )
    )


def bench_pit(spark, args, scratch: Path, notes: list[str]) -> tuple[list[Side], dict, str]:
    from pyspark.sql import functions as F

    from lakeloop.delta_io import checksum
    from lakeloop.transforms.training import (
        HAS_FEATURES,
        naive_latest_join,
        point_in_time_training_set,
        pruned_features,
    )

    lookback = args.pit_lookback_days
    paths = {}
    t = time.perf_counter()
    for which, (nf, ne, nl, days, window) in {
        "warm": (20_000, 2_000, 5_000, 120, 10),
        "main": (
            args.pit_feature_rows,
            args.pit_entities,
            args.pit_labels,
            args.pit_history_days,
            args.pit_window_days,
        ),
    }.items():
        features, labels = pit_tables(spark, nf, ne, nl, days, window)
        fp, lp = str(scratch / f"features_{which}"), str(scratch / f"labels_{which}")
        (
            features.repartition("feature_date")  # one file per daily partition
            .write.format("delta")
            .partitionBy("feature_date")
            .save(fp)
        )
        labels.coalesce(1).write.format("delta").save(lp)
        paths[which] = (fp, lp)
    files = len(list(Path(paths["main"][0]).glob("feature_date=*/*.parquet")))
    scenario = (
        f"feature table: Delta, {args.pit_feature_rows:,} rows over {args.pit_entities:,} "
        f"entities, {args.pit_history_days} days of history partitioned by feature_date "
        f"({files} files); labels: {args.pit_labels:,} over the last {args.pit_window_days} "
        f"days; look-back {lookback} days"
    )
    say(f"pit: tables written in {time.perf_counter() - t:.1f}s; {scenario}")

    def read(which: str):
        fp, lp = paths[which]
        return spark.read.format("delta").load(fp), spark.read.format("delta").load(lp)

    def bounds(labels) -> tuple[dt.date, dt.date]:
        t = time.perf_counter()
        b = labels.agg(F.min(F.to_date("sold_at")), F.max(F.to_date("sold_at"))).collect()[0]
        PHASES[BOUNDS] = time.perf_counter() - t
        return b[0], b[1]

    def pit_df(which: str):
        features, labels = read(which)
        b = bounds(labels)
        return point_in_time_training_set(
            labels,
            features,
            "listing_id",
            "sold_at",
            "feature_ts",
            lookback,
            feature_date="feature_date",
            label_date_bounds=(b[0], b[1]),
        )

    def range_df(which: str):
        features, labels = read(which)
        return range_join_training_set(
            labels,
            features,
            "listing_id",
            "sold_at",
            "feature_ts",
            lookback,
            feature_date="feature_date",
            label_date_bounds=bounds(labels),
        )

    def naive_df(which: str):
        features, labels = read(which)
        return naive_latest_join(labels, features, "listing_id", "feature_ts")

    def noop(df) -> None:
        df.write.format("noop").mode("overwrite").save()

    known: dict[str, tuple[dt.date, dt.date]] = {}  # label date bounds, found before timing

    def floor_inputs(which: str):
        """The labels and the look-back's feature rows (the same partition pruning as both
        joins), the label date bounds given (found before timing)."""
        features, labels = read(which)
        return labels, pruned_features(features, "feature_date", known[which], lookback)

    def floor(which: str) -> None:
        """What any join must do at least: read the floor's inputs, every column, no join; so
        no join can do less."""
        for df in floor_inputs(which):
            noop(df)

    def join_floor_df(which: str):
        """The cheapest join Spark does of the same rows: the labels left-joined to the
        look-back's feature rows on the key alone (shuffled hash join: no sort; the broadcast
        and sort-merge joins of these rows are slower), every pair, no time condition, no
        ranking."""
        labels, pruned = floor_inputs(which)
        return labels.join(pruned.hint("shuffle_hash"), "listing_id", "left")

    # correctness (untimed): one row per label, no feature from after the label
    for which, n in (("warm", 5_000), ("main", args.pit_labels)):
        out = pit_df(which)
        r = out.agg(
            F.count(F.lit(1)).alias("n"),
            F.count(F.when(F.col(HAS_FEATURES), 1)).alias("with"),
            F.count(F.when(F.col("feature_ts") > F.col("sold_at"), 1)).alias("future"),
            F.count(
                F.when(
                    F.col("feature_ts") < F.col("sold_at") - F.expr(f"INTERVAL {lookback} DAYS"), 1
                )
            ).alias("stale"),
        ).collect()[0]
        if r["n"] != n or r["future"] or r["stale"]:
            raise BenchError(
                f"pit ({which}): {r['n']} rows for {n} labels, {r['future']} with features from "
                f"after the label, {r['stale']} older than the look-back"
            )
        # the range-join baseline gives the same rows (like with like)
        got, want = checksum(range_df(which)), checksum(out)
        if got != want:
            raise BenchError(
                f"pit ({which}): the range join gives {got[0]} rows (checksum {got[1]}), "
                f"point_in_time_training_set {want[0]} (checksum {want[1]})"
            )
        say(
            f"pit ({which}): the range join gives the same rows as ours: {got[0]:,} rows, "
            f"checksum {got[1]}"
        )
        if which == "main":
            leaks = (
                naive_df("main")
                .agg(F.count(F.when(F.col("feature_ts") > F.col("sold_at"), 1)))
                .collect()[0][0]
            )
            say(
                f"pit: correctness ok: {r['n']:,} output rows = labels, {r['with']:,} with "
                f"features in the look-back, none from the future (the naive join gives "
                f"{leaks:,} labels features from after the sale)"
            )
            pruned = read("main")[0].where(
                F.col("feature_date").between(
                    F.lit(PIT_END - dt.timedelta(days=args.pit_window_days + lookback + 1)),
                    F.lit(PIT_END),
                )
            )
            plan = pruned._jdf.queryExecution().executedPlan().toString()
            if "PartitionFilters: [" not in plan or "PartitionFilters: []" in plan:
                notes.append("pit: the feature scan shows no partition filters (no pruning?)")

    sides = [
        (Side("pit  ours: point_in_time_training_set", args.pit_labels), pit_df),
        (Side("pit  baseline: range join + row_number", args.pit_labels), range_df),
        (Side("pit  reference: naive_latest_join", args.pit_labels), naive_df),
    ]
    say("pit: warm-up, one run of each side on the small tables")
    for side, fn in sides:
        t = time.perf_counter()
        noop(fn("warm"))
        say(f"  warm-up {side.name}: {time.perf_counter() - t:.2f}s")
    known.update({w: bounds(read(w)[1]) for w in ("warm", "main")})
    floor("warm")
    noop(join_floor_df("warm"))
    if (
        "ShuffledHashJoin"
        not in join_floor_df("main")._jdf.queryExecution().executedPlan().toString()
    ):
        raise BenchError("pit: the join floor's plan has no shuffled hash join")
    say(f"pit: timed runs, {args.repeats} per side, order alternating (noop write of all columns)")
    floor_side = Side("pit  floor: read labels + look-back features", args.pit_labels)
    join_side = Side("pit  floor: key-only join (shuffled hash)", args.pit_labels)
    with CpuWatch("the timed pit runs", notes, say, note_always=True):
        runs = [(s, lambda _rep, fn=fn: noop(fn("main"))) for s, fn in sides]
        runs.append((floor_side, lambda _rep: floor("main")))
        runs.append((join_side, lambda _rep: noop(join_floor_df("main"))))
        alternate(args.repeats, runs, spark=spark)
    ours, range_join, naive = (s for s, _ in sides)
    ratios = {
        "pit_vs_range_join": range_join.best / ours.best,
        "pit_vs_naive_join": naive.best / ours.best,
    }
    SECONDARY["pit_vs_range_join"] = range_join.best_cpu / ours.best_cpu
    SECONDARY["pit_vs_naive_join"] = naive.best_cpu / ours.best_cpu

    def without_bounds(side: Side) -> float:
        """The side's best run less its label-bounds pass (the floors are given the bounds)."""
        return min(t - p.get(BOUNDS, 0.0) for t, p in zip(side.times, side.phases, strict=True))

    # both joins find the label bounds with a pass over the labels (as build_training_set
    # does); the floors are given them, so each floor is set against the range join without
    # its pass, and then with the same pass on both sides
    range_only = without_bounds(range_join)
    pass_s = min(p.get(BOUNDS, 0.0) for p in range_join.phases)
    SECONDARY["pit_vs_naive_join (join only, label bounds given)"] = naive.best / without_bounds(
        ours
    )
    goal = GOALS["pit_vs_range_join"]
    for name, floor_s, what, verdict in (
        (
            "read",
            floor_side,
            "reading the labels and the look-back's feature rows, no join",
            "out of reach for any join of these rows",
        ),
        (
            "join",
            join_side,
            "the labels joined to the look-back's feature rows on the key alone "
            "(shuffled hash join, every pair, no time condition, no ranking)",
            "out of reach for any point-in-time join Spark runs on these rows",
        ),
    ):
        notes.append(
            f"pit_vs_range_join {name} "
            + timing.floor_text(range_only, floor_s, goal, what, verdict)
            + f" (the range join without its label-bounds pass: {range_only:.2f}s); with the "
            f"pass on both sides (+{pass_s:.2f}s): "
            f"{(range_only + pass_s) / (floor_s.best + pass_s):.2f}"
        )
    return [*(s for s, _ in sides), floor_side, join_side], ratios, scenario


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/validate.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="listings for the gate")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (best counts)")
    p.add_argument("--pit-feature-rows", type=int, default=1_100_000)
    p.add_argument("--pit-entities", type=int, default=50_000)
    p.add_argument("--pit-labels", type=int, default=100_000)
    p.add_argument("--pit-history-days", type=int, default=730)
    p.add_argument("--pit-window-days", type=int, default=30)
    p.add_argument("--pit-lookback-days", type=int, default=60)
    p.add_argument("--skip-gx", action="store_true", help="no GX baseline")
    p.add_argument("--skip-pit", action="store_true", help="no point-in-time join")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder under .bench/")
    p.add_argument("-v", "--verbose", action="store_true", help="lakeloop INFO logs")
    args = p.parse_args(argv)
    for name in ("rows", "repeats", "pit_feature_rows", "pit_entities", "pit_labels"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pit_window_days < 1 or args.pit_history_days < args.pit_window_days:
        p.error("need 1 <= --pit-window-days <= --pit-history-days")
    return args


def report(sides: list[Side], ratios: dict[str, float | None], notes: list[str]) -> None:
    cpu = "CPU s (least of the runs, this process + its JVM)"
    secondary = [
        f"# secondary, by {'wall s' if 'join only' in name else cpu}: {name} {value:.2f}"
        for name, value in SECONDARY.items()
    ]
    timing.print_report(sides, ratios, GOALS, notes, secondary=secondary)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing.setup_logging(args.verbose)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    from lakeloop.config import load_config

    scratch = BENCH_ROOT / f"validate-{uuid.uuid4().hex[:12]}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    cfg = load_config("test", {"lakehouse_root": str(scratch)}, project_root=ROOT)
    say(
        f"scratch {scratch}; gate rows {args.rows:,}, repeats {args.repeats}; spark "
        f"{cfg.spark.master}, driver memory {cfg.spark.driver_memory}, shuffle partitions "
        f"{cfg.spark.shuffle_partitions}; load avg {os.getloadavg()[0]:.1f}"
    )
    res = timing.Results()
    with timing.spark_session(cfg, "lakeloop-bench-validate", scratch, args.keep) as spark:
        out = res.part("gate", lambda: bench_gate(spark, args, scratch, res.notes))
        if out:
            res.sides += out[0]
            res.ratios.update(out[1])
        if not args.skip_pit:
            out = res.part("pit", lambda: bench_pit(spark, args, scratch, res.notes))
            if out:
                res.sides += out[0]
                res.ratios.update(out[1])
                res.notes.append(f"pit scenario: {out[2]}")

    wanted = ["gate_vs_one_scan"]
    wanted += [] if args.skip_gx else ["gate_vs_gx_default"]
    wanted += [] if args.skip_pit else ["pit_vs_range_join", "pit_vs_naive_join"]
    return res.finish(wanted, report)


if __name__ == "__main__":
    sys.exit(main())
