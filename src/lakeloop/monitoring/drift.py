"""Drift statistics computed in Spark: a feature's profile (small aggregates of a DataFrame) and
the comparison of the day's profile with the champion's reference profile.

Only small aggregates reach the driver, never rows:
- `profile` (the reference, at training time) makes two passes over the data: one multi-column
  `approxQuantile` call (the decile edges and a `grid`-point quantile grid of every numeric
  feature) and one multi-column `Bucketizer` (`handleInvalid="keep"`) + `groupBy` pass that
  gives, per feature, the bucket counts, the null and NaN counts, the category counts and the
  partial sums behind mean/std/min/max.
- `current_profile` (each monitored day) makes one Bucketizer + groupBy pass: the day's rows in
  the reference's categories and in fine buckets made of the reference's edges and quantile
  grid, from which the decile counts and the day's quantile grid are read.
- `compare` works on those small arrays on the driver: PSI over the buckets, KS D and the
  normalised Wasserstein distance from the two quantile grids, Jensen-Shannon distance and a
  chi-square contingency p-value for categoricals.

Conventions (the tests hold the code to them):
- numeric buckets: inner edges are the reference deciles with duplicates dropped (a constant
  column has one edge, an all-null column none), outer bins open (-inf, +inf); a value equal to
  an edge falls in the bucket above it. Nulls and NaNs are counted apart (Spark's `count` would
  count NaN), each in its own bin. Booleans are numeric 0/1. +/-inf are values (in the outer
  buckets, and min/max) but are left out of mean/std, which are over the finite values; std is
  the population std (ddof=0).
- categorical buckets: every category of the reference (most frequent first), then "(unseen)"
  (values the reference's category list does not hold) and "null".
- PSI = sum over bins of (c - r) * ln(c / r) with r, c the shares of all rows (null and NaN bins
  included); an empty share is floored at `floor` (1e-4).
- KS D: the largest gap between the two empirical CDFs read from the quantile grids (within about
  1e-3 of the exact D with the default grid and error). Wasserstein: the mean absolute gap of the
  two quantile functions, divided by the reference std (in the feature's units if that is 0).
- Jensen-Shannon: `scipy.spatial.distance.jensenshannon` of the two share arrays, natural log,
  i.e. the distance (the square root of the divergence), between 0 and sqrt(ln 2).
- chi2_p: `scipy.stats.chi2_contingency` on the 2 x k table of counts, all-zero columns dropped
  (1.0 when fewer than two columns remain: nothing to tell apart).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pyspark.ml.feature import Bucketizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)
NULL_BIN = "null"
NAN_BIN = "NaN"
UNSEEN = "(unseen)"
FLOOR = 1e-4
MAX_CATEGORIES = 1000  # a reference keeps at most this many categories; the rest is "(unseen)"

_INF = float("inf")
_KEY_BITS = 24  # group key of the day's pass: feature << 24 | bucket (null: the all-ones bucket)
_NULL_KEY = (1 << _KEY_BITS) - 1
_NUMERIC_TYPES = (T.NumericType, T.BooleanType)


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's small aggregates. rows counts every row (null and NaN included).
    numeric: `edges` are the inner bucket edges, `counts` the len(edges)+1 bucket counts of the
    non-null non-NaN rows, `quantiles` the quantile grid at probabilities (i + 0.5) / len.
    categorical: `counts` one per entry of `categories` (non-null rows)."""

    feature: str
    kind: str
    rows: int
    nulls: int
    nans: int
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: list[float] = field(default_factory=list)

    def bins(self) -> list[str]:
        """The labels of `counts` (numeric: "(-inf, e0)", "[e0, e1)", ..., "[ek, inf)")."""
        if self.kind == CATEGORICAL:
            return list(self.categories)
        bounds = [-_INF, *self.edges, _INF]
        return [
            f"{'(' if lo == -_INF else '['}{_num(lo)}, {_num(hi)})"
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]


@dataclass(frozen=True)
class Drift:
    """The comparison of a feature's current profile with its reference. `bins` labels the two
    count arrays PSI used (numeric: the buckets, then "null", "NaN"; categorical: the
    reference's categories, "(unseen)", "null"). ks/wasserstein are numeric only (None when a
    side has no values), jensen_shannon/chi2_p categorical only."""

    feature: str
    kind: str
    rows_reference: int
    rows_current: int
    psi: float
    ks: float | None
    wasserstein: float | None
    jensen_shannon: float | None
    chi2_p: float | None
    null_share_reference: float
    null_share_current: float
    bins: list[str]
    reference_counts: list[int]
    current_counts: list[int]


# --- profiles (Spark) -------------------------------------------------------------------------


def profile(
    df: DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    bins: int = 10,
    grid: int = 2000,
    rel_error: float = 1e-4,
) -> dict[str, FeatureProfile]:
    """The reference profile of `numeric` and `categorical` columns of df (see the module doc):
    one approxQuantile pass (deciles + grid) and one Bucketizer + groupBy pass."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    _check_grid(grid, rel_error)
    _check_columns(df, numeric, categorical)
    deciles = [i / bins for i in range(1, bins)]
    qs = _quantiles(df, numeric, deciles + grid_probs(grid), rel_error)
    splits: dict[str, list[float]] = {}
    grids: dict[str, list[float]] = {}
    for c in numeric:
        q = qs[c]
        grids[c] = q[len(deciles) :]
        splits[c] = [-_INF, *_edges(q[: len(deciles)]), _INF]
    stats = _bucket_stats(df, splits, categorical)
    out: dict[str, FeatureProfile] = {}
    for c in numeric:
        out[c] = _numeric_profile(c, splits[c], stats.get(c, []), grids[c])
    for c in categorical:
        out[c] = _categorical_profile(c, stats.get(c, []), None)
    log.info(
        "profiled %d numeric and %d categorical features over %d rows",
        len(numeric),
        len(categorical),
        next(iter(out.values())).rows if out else 0,
    )
    return out


def current_profile(
    df: DataFrame,
    reference: Mapping[str, FeatureProfile],
    *,
    grid: int = 2000,
    rel_error: float = 1e-4,
) -> dict[str, FeatureProfile]:
    """The day's profile of the reference's features, bucketed with the reference's edges and
    categories (values outside the reference's categories count as "(unseen)"), plus the
    day's `grid`-point quantile grid, all from one Bucketizer + groupBy pass: the numeric
    columns are bucketed on the reference's decile edges together with its quantile grid
    (~2000 fine buckets, each about 1/2000 of the reference's rows), counting each fine bucket's
    rows with their min and max. The decile counts are sums of fine buckets; the day's grid is
    read from the fine buckets' cumulative counts, interpolating linearly between a bucket's
    min and max (exact at every bucket boundary, so KS D stays within ~1/grid of the exact
    value). This is several times cheaper than a second approxQuantile pass; `rel_error` is
    accepted for symmetry with `profile` and not used."""
    _check_grid(grid, rel_error)
    numeric = [f for f, p in reference.items() if p.kind == NUMERIC]
    categorical = [f for f, p in reference.items() if p.kind == CATEGORICAL]
    for f, p in reference.items():
        if p.kind not in KINDS:
            raise ValueError(f"feature {f!r}: unknown profile kind {p.kind!r} (expected {KINDS})")
    _check_columns(df, numeric, categorical)
    fine = {
        c: [-_INF, *_edges([*reference[c].edges, *reference[c].quantiles]), _INF] for c in numeric
    }
    known = {c: [k for k in reference[c].categories if k != UNSEEN] for c in categorical}
    stats = _bucket_stats(df, fine, categorical, known)
    out: dict[str, FeatureProfile] = {}
    for c in reference:
        if c in fine:
            out[c] = _numeric_profile(c, fine[c], stats.get(c, []), None, reference[c].edges, grid)
        else:
            out[c] = _categorical_profile(c, stats.get(c, []), known[c])
    return out


def grid_probs(grid: int) -> list[float]:
    """The probabilities of the quantile grid: the midpoints (i + 0.5) / grid."""
    return [(i + 0.5) / grid for i in range(grid)]


def _check_grid(grid: int, rel_error: float) -> None:
    if grid < 2:
        raise ValueError(f"grid must be at least 2, got {grid}")
    if not 0 < rel_error < 1:
        raise ValueError(f"rel_error must be in (0, 1), got {rel_error}")


def _check_columns(df: DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    if isinstance(numeric, str) or isinstance(categorical, str):
        raise ValueError("numeric and categorical must be lists of column names, not a string")
    seen: set[str] = set()
    types = {f.name: f.dataType for f in df.schema.fields}
    for c in [*numeric, *categorical]:
        if c in seen:
            raise ValueError(
                f"feature {c!r} is listed twice (numeric: {numeric}, categorical: {categorical})"
            )
        seen.add(c)
        if c not in types:
            raise ValueError(
                f"feature {c!r} is not a column of the DataFrame (columns: {', '.join(df.columns)})"
            )
    for c in numeric:
        if not isinstance(types[c], _NUMERIC_TYPES):
            raise ValueError(
                f"feature {c!r} is profiled as numeric but its column is "
                f"{types[c].simpleString()}; list it as categorical"
            )


def _quantiles(
    df: DataFrame, numeric: Sequence[str], probs: list[float], rel_error: float
) -> dict[str, list[float]]:
    """One multi-column approxQuantile call (nulls and NaNs are ignored; [] when a column has
    no values)."""
    if not numeric:
        return {}
    cols = [f"_q{i}" for i in range(len(numeric))]
    src = df.select(*[F.col(c).cast("double").alias(q) for c, q in zip(numeric, cols, strict=True)])
    found = src.approxQuantile(cols, probs, rel_error)
    return {c: [float(v) for v in q] for c, q in zip(numeric, found, strict=True)}


def _edges(deciles: list[float]) -> list[float]:
    """Sorted, finite, duplicates dropped (a constant column: one edge; no values: none)."""
    return sorted({float(v) for v in deciles if math.isfinite(v)})


def _bucket_stats(
    df: DataFrame,
    splits: Mapping[str, list[float]],
    categorical: Sequence[str],
    known: Mapping[str, list[str]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """One pass: the numeric columns through one multi-column Bucketizer (NaN -> the bucket
    len(splits) - 1, null -> null), then every (feature, bucket or category) group counted with
    the partial statistics of its finite values. With `known` (the day's pass) a category is
    its index in known[c] (any other value: "(unseen)"), so every group key is one long, which
    Spark's hash aggregation handles about twice as fast as a (feature, bucket, string) key.
    Returns feature -> its groups (f, b, k, n, nf, mean, var, min, max)."""
    numeric = list(splits)
    if not numeric and not categorical:
        return {}
    v = {c: f"_v{i}" for i, c in enumerate(numeric)}
    b = {c: f"_b{i}" for i, c in enumerate(numeric)}
    k = {c: f"_c{i}" for i, c in enumerate(categorical)}
    kb = {c: f"_cb{i}" for i, c in enumerate(categorical)}
    src = df.select(
        *[F.col(c).cast("double").alias(v[c]) for c in numeric],
        *[F.col(c).cast("string").alias(k[c]) for c in categorical],
    )
    if known is not None:  # categories as bucket indexes: unseen len(known[c]), null null
        for c in categorical:
            col = F.col(k[c])
            index = F.create_map(*[F.lit(x) for i, cat in enumerate(known[c]) for x in (cat, i)])
            unseen = F.when(col.isNotNull(), F.lit(len(known[c])))
            at = F.coalesce(index[col], unseen) if known[c] else unseen
            src = src.withColumn(kb[c], at)
    # Bucketizer needs 3 splits or more: a column without edges (no values in the reference)
    # has the one bucket 0, NaN -> 1, null -> null, as Bucketizer would give
    split = [c for c in numeric if len(splits[c]) >= 3]
    if split:
        src = _bucketize(
            src, [splits[c] for c in split], [v[c] for c in split], [b[c] for c in split]
        )
    for c in numeric:
        if c not in split:
            x = F.col(v[c])
            src = src.withColumn(b[c], F.when(x.isNull(), None).when(F.isnan(x), 1).otherwise(0))
    names = [*numeric, *categorical]
    x = F.col("v")
    value = F.when(~F.isnan(x), x)
    finite = F.when(~F.isnan(x) & (F.abs(x) != F.lit(_INF)), x)
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.count(finite).alias("nf"),
        F.avg(finite).alias("mean"),
        F.var_pop(finite).alias("var"),
        F.min(value).alias("min"),
        F.max(value).alias("max"),
    ]
    if known is not None or not categorical:
        keys = [F.col(b[c]) for c in numeric] + [F.col(kb[c]) for c in categorical]
        values = [F.col(v[c]) for c in numeric] + [F.lit(None).cast("double")] * len(categorical)
        entries = [
            F.struct(
                (F.lit(i << _KEY_BITS) + F.coalesce(key.cast("long"), F.lit(_NULL_KEY))).alias("g"),
                val.alias("v"),
            )
            for i, (key, val) in enumerate(zip(keys, values, strict=True))
        ]
        rows = (
            src.select(F.explode(F.array(*entries)).alias("e"))
            .select("e.*")
            .groupBy("g")
            .agg(*aggs)
            .collect()
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            d = r.asDict()
            g = d.pop("g")
            f, idx = g >> _KEY_BITS, g & _NULL_KEY
            idx = None if idx == _NULL_KEY else idx
            name = names[f]
            d["f"], d["b"], d["k"] = f, idx, None
            if f >= len(numeric):  # a category index of the day's pass
                cats = known[name] if known else []
                d["b"] = None
                d["k"] = None if idx is None else cats[idx] if idx < len(cats) else UNSEEN
            out.setdefault(name, []).append(d)
        return out
    entries = [
        F.struct(
            F.lit(i).alias("f"),
            F.col(b[c]).cast("int").alias("b"),
            F.lit(None).cast("string").alias("k"),
            F.col(v[c]).alias("v"),
        )
        for i, c in enumerate(numeric)
    ] + [
        F.struct(
            F.lit(len(numeric) + j).alias("f"),
            F.lit(None).cast("int").alias("b"),
            F.col(k[c]).alias("k"),
            F.lit(None).cast("double").alias("v"),
        )
        for j, c in enumerate(categorical)
    ]
    grouped = (
        src.select(F.explode(F.array(*entries)).alias("e"))
        .select("e.*")
        .groupBy("f", "b", "k")
        .agg(*aggs)
        .collect()
    )
    out = {}
    for r in grouped:
        out.setdefault(names[r["f"]], []).append(r.asDict())
    return out


def _bucketize(
    df: DataFrame, splits: list[list[float]], inputs: list[str], outputs: list[str]
) -> DataFrame:
    """One multi-column Bucketizer (handleInvalid "keep") over df. pyspark hands a Python
    list to the JVM one element per py4j call (~9 s for 16 x 2000 splits), so the params go
    over as one JSON string each, decoded by Spark's own Param.jsonDecode; without a JVM
    gateway (Spark Connect) the ordinary wrapper is used."""
    jvm = getattr(df.sparkSession, "_jvm", None)
    if jvm is None:
        bucketizer = Bucketizer(
            splitsArray=splits, inputCols=inputs, outputCols=outputs, handleInvalid="keep"
        )
        return bucketizer.transform(df)
    enc = [[("Inf" if x > 0 else "-Inf") if math.isinf(x) else x for x in s] for s in splits]
    jb = jvm.org.apache.spark.ml.feature.Bucketizer()
    jb.set(jb.splitsArray(), jb.splitsArray().jsonDecode(json.dumps(enc)))
    jb.set(jb.inputCols(), jb.inputCols().jsonDecode(json.dumps(inputs)))
    jb.set(jb.outputCols(), jb.outputCols().jsonDecode(json.dumps(outputs)))
    jb.setHandleInvalid("keep")
    return DataFrame(jb.transform(df._jdf), df.sparkSession)


def _numeric_profile(
    feature: str,
    splits: list[float],
    groups: list[Any],
    quantiles: list[float] | None,
    edges: list[float] | None = None,
    grid: int = 0,
) -> FeatureProfile:
    """From the groups of `splits`' buckets. The reference: `quantiles` given, `splits` are the
    edges. The day: `splits` are fine buckets inside `edges`' buckets; the counts are summed up
    to `edges`' buckets and a `grid`-point grid is read from the fine buckets."""
    nbuckets = len(splits) - 1
    fine = np.zeros(nbuckets, dtype=np.int64)
    lo = np.full(nbuckets, np.nan)
    hi = np.full(nbuckets, np.nan)
    nulls = nans = 0
    for g in groups:
        if g["b"] is None:
            nulls += g["n"]
        elif g["b"] == nbuckets:  # Bucketizer's "keep" bucket: NaN
            nans += g["n"]
        else:
            fine[g["b"]] += g["n"]
            lo[g["b"]], hi[g["b"]] = g["min"], g["max"]
    if edges is None:
        edges, counts = list(splits[1:-1]), [int(n) for n in fine]
    else:
        # each fine bucket [splits[i], splits[i+1]) lies in the edges' bucket of its lower bound
        which = np.searchsorted(np.asarray(edges, float), np.asarray(splits[:-1]), side="right")
        counts = [int(n) for n in np.bincount(which, weights=fine, minlength=len(edges) + 1)]
        quantiles = _grid_from_buckets(fine, lo, hi, grid)
    mean, std = _combine([g for g in groups if g["nf"]])
    seen = ~np.isnan(lo)
    return FeatureProfile(
        feature=feature,
        kind=NUMERIC,
        rows=int(fine.sum()) + nulls + nans,
        nulls=nulls,
        nans=nans,
        edges=list(edges),
        counts=counts,
        categories=[],
        mean=mean,
        std=std,
        min=float(lo[seen].min()) if seen.any() else None,
        max=float(hi[seen].max()) if seen.any() else None,
        quantiles=[float(v) for v in quantiles],
    )


def _grid_from_buckets(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, grid: int) -> list:
    """The values at ranks (i + 0.5) / grid of the rows of buckets with `counts` rows between
    `lo` and `hi` each (spread evenly between a bucket's min and max)."""
    total = int(counts.sum())
    if total == 0:
        return []
    ends = np.cumsum(counts)
    rank = np.asarray(grid_probs(grid)) * total  # 0-based continuous rank
    b = np.minimum(np.searchsorted(ends, rank, side="right"), counts.size - 1)
    n = counts[b]
    frac = np.clip((rank - (ends[b] - n)) / np.maximum(n - 1, 1), 0.0, 1.0)
    a, z = lo[b], hi[b]
    with np.errstate(invalid="ignore"):
        between = a + (z - a) * frac
    finite = np.isfinite(a) & np.isfinite(z)
    return list(np.where(finite, between, np.where(frac < 0.5, a, z)))


def _combine(groups: list[Any]) -> tuple[float | None, float | None]:
    """mean and population std of the union of groups (count nf, mean, var_pop): Chan's
    parallel formula, stable for large means."""
    if not groups:
        return None, None
    n = sum(g["nf"] for g in groups)
    mean = sum(g["nf"] * g["mean"] for g in groups) / n
    m2 = sum(g["nf"] * (g["var"] + (g["mean"] - mean) ** 2) for g in groups)
    return float(mean), float(math.sqrt(max(m2 / n, 0.0)))


def _categorical_profile(
    feature: str, groups: list[Any], known: list[str] | None
) -> FeatureProfile:
    """The reference (`known` None): its categories, most frequent first (at most
    MAX_CATEGORIES; the rest counted as "(unseen)"). The current side (`known`): the reference's
    categories in their order, then "(unseen)"."""
    nulls = sum(g["n"] for g in groups if g["k"] is None)
    found = {g["k"]: g["n"] for g in groups if g["k"] is not None}
    if known is None:
        ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
        cats = [c for c, _ in ranked[:MAX_CATEGORIES]]
        counts = [n for _, n in ranked[:MAX_CATEGORIES]]
        if len(ranked) > MAX_CATEGORIES:
            log.warning(
                "feature %r has %d categories; the reference keeps the %d most frequent and "
                "counts the rest as %r",
                feature,
                len(ranked),
                MAX_CATEGORIES,
                UNSEEN,
            )
            cats.append(UNSEEN)
            counts.append(sum(n for _, n in ranked[MAX_CATEGORIES:]))
    else:
        cats = [*known, UNSEEN]
        counts = [found.get(c, 0) for c in known]
        keep = set(known)
        counts.append(sum(n for c, n in found.items() if c not in keep))
    return FeatureProfile(
        feature=feature,
        kind=CATEGORICAL,
        rows=sum(found.values()) + nulls,
        nulls=nulls,
        nans=0,
        edges=[],
        counts=counts,
        categories=cats,
    )


# --- comparison (driver) ----------------------------------------------------------------------


def compare(reference: FeatureProfile, current: FeatureProfile, *, floor: float = FLOOR) -> Drift:
    """The drift of `current` (from current_profile with this reference) against `reference`."""
    f = reference.feature
    if current.feature != f or current.kind != reference.kind:
        raise ValueError(
            f"cannot compare {current.kind} profile {current.feature!r} with {reference.kind} "
            f"reference {f!r}"
        )
    if reference.rows == 0:
        raise ValueError(f"feature {f!r}: the reference profile has no rows")
    if current.rows == 0:
        raise ValueError(f"feature {f!r}: the current data has no rows to compare")
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    bins, ref, cur = aligned_counts(reference, current)
    r, c = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    ks = wasserstein = js = chi2_p = None
    if reference.kind == NUMERIC:
        if reference.quantiles and current.quantiles:
            ks = ks_from_grids(reference.quantiles, current.quantiles)
            wasserstein = wasserstein_from_grids(reference.quantiles, current.quantiles)
            if reference.std:
                wasserstein /= reference.std
    else:
        js = jensen_shannon(r, c)
        chi2_p = chi2_pvalue(r, c)
    return Drift(
        feature=f,
        kind=reference.kind,
        rows_reference=reference.rows,
        rows_current=current.rows,
        psi=psi(r, c, floor=floor),
        ks=ks,
        wasserstein=wasserstein,
        jensen_shannon=js,
        chi2_p=chi2_p,
        null_share_reference=reference.nulls / reference.rows,
        null_share_current=current.nulls / current.rows,
        bins=bins,
        reference_counts=[int(v) for v in ref],
        current_counts=[int(v) for v in cur],
    )


def aligned_counts(
    reference: FeatureProfile, current: FeatureProfile
) -> tuple[list[str], list[int], list[int]]:
    """The bin labels and the two count arrays PSI compares (see Drift.bins)."""
    f = reference.feature
    if reference.kind == NUMERIC:
        if list(current.edges) != list(reference.edges):
            raise ValueError(
                f"feature {f!r}: the current profile was not bucketed with the reference's edges "
                "(build it with current_profile(df, reference))"
            )
        bins = [*reference.bins(), NULL_BIN, NAN_BIN]
        return (
            bins,
            [*reference.counts, reference.nulls, reference.nans],
            [*current.counts, current.nulls, current.nans],
        )
    cats = [k for k in reference.categories if k != UNSEEN]
    ref_by = dict(zip(reference.categories, reference.counts, strict=True))
    cur_by = dict(zip(current.categories, current.counts, strict=True))
    unseen_cur = sum(n for k, n in cur_by.items() if k not in ref_by or k == UNSEEN)
    return (
        [*cats, UNSEEN, NULL_BIN],
        [*(ref_by[k] for k in cats), ref_by.get(UNSEEN, 0), reference.nulls],
        [*(cur_by.get(k, 0) for k in cats), unseen_cur, current.nulls],
    )


def shares(counts: np.ndarray, floor: float) -> np.ndarray:
    """counts / total with the empty shares set to `floor`."""
    p = counts / counts.sum()
    return np.where(counts == 0, floor, p)


def psi(reference: np.ndarray, current: np.ndarray, *, floor: float = FLOOR) -> float:
    """Σ (c − r)·ln(c / r) over the bins, on shares with empty ones floored."""
    r, c = shares(np.asarray(reference, float), floor), shares(np.asarray(current, float), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_from_grids(reference: Sequence[float], current: Sequence[float]) -> float:
    """KS D between the empirical CDFs of two quantile grids (each grid point carries an equal
    share of its side's rows), evaluated at every grid point (right-continuous CDFs)."""
    a, b = np.sort(np.asarray(reference, float)), np.sort(np.asarray(current, float))
    xs = np.concatenate([a, b])
    fa = np.searchsorted(a, xs, side="right") / a.size
    fb = np.searchsorted(b, xs, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def wasserstein_from_grids(reference: Sequence[float], current: Sequence[float]) -> float:
    """W1 = ∫|Qr(p) − Qc(p)| dp on the grid's midpoint probabilities (linear interpolation when
    the two grids differ in size), over the grid points where both quantiles are finite."""
    a, b = np.asarray(reference, float), np.asarray(current, float)
    if a.size != b.size:
        p = np.asarray(grid_probs(max(a.size, b.size)))
        a = np.interp(p, np.asarray(grid_probs(a.size)), a)
        b = np.interp(p, np.asarray(grid_probs(b.size)), b)
    finite = np.isfinite(a) & np.isfinite(b)  # +/-inf values: the tails they hold are left out
    return float(np.mean(np.abs(a[finite] - b[finite]))) if finite.any() else math.nan


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """scipy's Jensen-Shannon distance (natural log): sqrt of the divergence."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(reference / reference.sum(), current / current.sum()))


def chi2_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of scipy's chi-square contingency test on the 2 x k table, all-zero columns
    dropped; 1.0 when fewer than two columns remain."""
    from scipy.stats import chi2_contingency

    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table).pvalue)


# --- Evidently's PSI in Spark (the oracle of the tests) --------------------------------------


def evidently_psi(reference: DataFrame, current: DataFrame, column: str) -> float:
    """PSI as Evidently 0.7.23 computes it for a numeric column with more than 20 distinct
    reference values (`get_binned_data`), in Spark: nulls, NaN and +/-inf dropped; equal-width
    bins over the joint reference + current range, their number numpy's "sturges" rule for the
    joint size; shares of each side's rows; an empty share becomes the smallest non-zero share
    / 1e6 when that is <= 1e-4, else 1e-4 (per side); PSI = Σ (r − c)·ln(r / c). A test
    device, not the production PSI (equal-width bins miss drift on skewed features)."""
    for side, df in (("reference", reference), ("current", current)):
        if column not in df.columns:
            raise ValueError(
                f"column {column!r} is not in the {side} DataFrame (columns: "
                f"{', '.join(df.columns)})"
            )
    x = F.col(column).cast("double")
    v = F.col("v")
    both = (
        reference.select(F.lit(0).alias("s"), x.alias("v"))
        .unionAll(current.select(F.lit(1).alias("s"), x.alias("v")))
        .where(v.isNotNull() & ~F.isnan(v) & (F.abs(v) != F.lit(_INF)))
    )
    stats = {
        r["s"]: r for r in both.groupBy("s").agg(F.count("v"), F.min("v"), F.max("v")).collect()
    }
    for s, side in ((0, "reference"), (1, "current")):
        if s not in stats:
            raise ValueError(f"column {column!r}: no finite values in the {side} data")
    n = {s: stats[s][1] for s in (0, 1)}
    lo, hi = min(stats[0][2], stats[1][2]), max(stats[0][3], stats[1][3])
    edges = sturges_edges(lo, hi, n[0] + n[1])
    if len(edges) == 2:  # one bin (Bucketizer needs two or more): every value is in it
        return 0.0
    b = Bucketizer(splits=edges, inputCol="v", outputCol="b", handleInvalid="error")
    counted = b.transform(both).groupBy("s", "b").count().collect()
    got = {(r["s"], int(r["b"])): r["count"] for r in counted}
    parts = [np.array([got.get((s, i), 0) for i in range(len(edges) - 1)]) / n[s] for s in (0, 1)]
    r, c = (_evidently_fill(p) for p in parts)
    return float(np.sum((r - c) * np.log(r / c)))


def sturges_edges(lo: float, hi: float, size: int) -> list[float]:
    """numpy's `histogram_bin_edges(a, bins="sturges")` for float data of min lo, max hi and
    `size` values, from those three numbers."""
    first, last = float(lo), float(hi)
    if first == last:
        first, last = first - 0.5, last + 0.5
        n_bins = 1  # ptp 0: numpy's width is 0, one bin
    else:
        width = (float(hi) - float(lo)) / (np.log2(size) + 1.0)
        n_bins = int(np.ceil((last - first) / width))
    return [float(e) for e in np.linspace(first, last, n_bins + 1, endpoint=True)]


def _evidently_fill(p: np.ndarray) -> np.ndarray:
    smallest = p[p != 0].min()
    return np.where(p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, p)


# --- serialization ----------------------------------------------------------------------------

PROFILE_SCHEMA = T.StructType(
    [
        T.StructField("feature", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("rows", T.LongType(), False),
        T.StructField("nulls", T.LongType(), False),
        T.StructField("nans", T.LongType(), False),
        T.StructField("edges", T.ArrayType(T.DoubleType(), False), False),
        T.StructField("counts", T.ArrayType(T.LongType(), False), False),
        T.StructField("categories", T.ArrayType(T.StringType(), False), False),
        T.StructField("mean", T.DoubleType()),
        T.StructField("std", T.DoubleType()),
        T.StructField("min", T.DoubleType()),
        T.StructField("max", T.DoubleType()),
        T.StructField("quantiles", T.ArrayType(T.DoubleType(), False), False),
    ]
)
_FIELDS = PROFILE_SCHEMA.fieldNames()


def profile_rows(profiles: Mapping[str, FeatureProfile] | Iterable[FeatureProfile]) -> list[tuple]:
    """One tuple per profile in PROFILE_SCHEMA's column order."""
    items = profiles.values() if isinstance(profiles, Mapping) else profiles
    return [tuple(getattr(p, n) for n in _FIELDS) for p in items]


def profiles_from_rows(rows: Iterable[Any]) -> dict[str, FeatureProfile]:
    """The profiles of rows (Spark Rows or dicts with at least PROFILE_SCHEMA's columns, extra
    columns ignored, or tuples in its order)."""
    out: dict[str, FeatureProfile] = {}
    for r in rows:
        if hasattr(r, "asDict"):
            d = r.asDict()
        elif isinstance(r, Mapping):
            d = dict(r)
        else:
            d = dict(zip(_FIELDS, r, strict=True))
        missing = [n for n in _FIELDS if n not in d]
        if missing:
            raise ValueError(f"profile row lacks the columns {missing}: {d!r}")
        p = _from_dict(d)
        out[p.feature] = p
    return out


def to_json(profiles: Mapping[str, FeatureProfile]) -> str:
    """The profiles as JSON (a list of objects; +/-inf as JSON's Infinity extension)."""
    return json.dumps([asdict(p) for p in profiles.values()], indent=1)


def from_json(text: str) -> dict[str, FeatureProfile]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a reference profile (invalid JSON: {e})") from e
    if not isinstance(items, list):
        raise ValueError("not a reference profile (expected a JSON list of feature profiles)")
    return profiles_from_rows(items)


def _from_dict(d: Mapping[str, Any]) -> FeatureProfile:
    if d["kind"] not in KINDS:
        raise ValueError(f"feature {d['feature']!r}: unknown profile kind {d['kind']!r}")
    opt = {n: (None if d[n] is None else float(d[n])) for n in ("mean", "std", "min", "max")}
    return FeatureProfile(
        feature=str(d["feature"]),
        kind=str(d["kind"]),
        rows=int(d["rows"]),
        nulls=int(d["nulls"]),
        nans=int(d["nans"]),
        edges=[float(v) for v in d["edges"] or []],
        counts=[int(v) for v in d["counts"] or []],
        categories=[str(v) for v in d["categories"] or []],
        quantiles=[float(v) for v in d["quantiles"] or []],
        **opt,
    )


def _num(v: float) -> str:
    return "inf" if v == _INF else "-inf" if v == -_INF else f"{v:.6g}"
