"""Spec-driven cleaning of rows that passed the validation gate: string normalisation,
missing values (drop / fill a constant / fill the batch median), outliers (clip or flag by IQR
or quantiles) and de-duplication by key keeping the latest row. Rows that cleaning removes (drop,
superseded duplicates) are not lost: they get a rule name in `_failed_rules` and go to
quarantine. Batch statistics come in as a dict computed by the job from `cleaning_stats`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeloop.config import SpecError
from lakeloop.quality.rules import FAILED
from lakeloop.spec import CleaningSpec, OutlierRule

FLAGS = "_flags"


def _stat_name(column: str, q: float) -> str:
    return f"{column}__q{int(round(q * 1000)):04d}"


def _quantiles(rule: OutlierRule) -> tuple[float, float]:
    return (0.25, 0.75) if rule.method == "iqr" else (rule.lower, rule.upper)


def unknown_columns(spec: CleaningSpec, columns: list[str]) -> list[str]:
    """`cleaning.<part>.<column>` for every column the cleaning spec names that `columns`
    lacks, in spec order."""
    used = [
        (f"{part}.{c}", c)
        for part in ("normalize", "missing", "outliers")
        for c in getattr(spec, part)
    ]
    if spec.dedup:
        used += [(f"dedup.key.{c}", c) for c in spec.dedup.key]
        used += [(f"dedup.order_by.{c}", c) for c in spec.dedup.order_by]
    return [f"cleaning.{key}" for key, c in used if c not in columns]


def _missing_columns(spec: CleaningSpec, df: DataFrame) -> None:
    unknown = unknown_columns(spec, df.columns)
    if unknown:
        raise SpecError(
            f"{', '.join(unknown)}: no such column in the table (it has: {', '.join(df.columns)})"
        )


def normalized(df: DataFrame, spec: CleaningSpec) -> DataFrame:
    """Strings trimmed / lower- / upper-cased as the spec says."""
    _missing_columns(spec, df)
    ops = {"trim": F.trim, "lower": F.lower, "upper": F.upper}
    cols = {}
    for name, steps in spec.normalize.items():
        c = F.col(name)
        for step in steps:
            c = ops[step](c)
        cols[name] = c
    return df.withColumns(cols) if cols else df


def cleaning_stats(df: DataFrame, spec: CleaningSpec) -> DataFrame:
    """One row: the approximate quantiles that median fills and outlier bounds need."""
    wanted: dict[str, tuple[str, float]] = {}
    for name, rule in spec.missing.items():
        if rule.strategy == "median":
            wanted[_stat_name(name, 0.5)] = (name, 0.5)
    for name, rule in spec.outliers.items():
        for q in _quantiles(rule):
            wanted[_stat_name(name, q)] = (name, q)
    aggs = [
        F.percentile_approx(F.col(c), q, 10_000).cast("double").alias(k)
        for k, (c, q) in wanted.items()
    ]
    return df.agg(*aggs) if aggs else df.sparkSession.range(1).select(F.lit(1).alias("_none"))


def _bounds(name: str, rule: OutlierRule, stats: dict[str, float | None]):
    lo_q, hi_q = _quantiles(rule)
    lo, hi = stats.get(_stat_name(name, lo_q)), stats.get(_stat_name(name, hi_q))
    if lo is None or hi is None:
        return None, None
    if rule.method == "iqr":
        iqr = hi - lo
        return lo - rule.k * iqr, hi + rule.k * iqr
    return lo, hi


def _append(arr: Column, cond: Column, value: str) -> Column:
    return F.when(cond, F.array_append(arr, F.lit(value))).otherwise(arr)


def cleaned(df: DataFrame, spec: CleaningSpec, stats: dict[str, float | None]) -> DataFrame:
    """Apply missing-value, outlier and de-duplication rules to gate-passing rows."""
    _missing_columns(spec, df)
    failed = F.col(FAILED)
    flags = F.array().cast("array<string>")
    cols: dict[str, Column] = {}
    for name, rule in spec.missing.items():
        c = F.col(name)
        if rule.strategy == "drop":
            failed = _append(failed, c.isNull(), f"cleaning.missing_dropped({name})")
        elif rule.strategy == "fill":
            cols[name] = F.coalesce(c, F.lit(rule.value).cast(df.schema[name].dataType))
        else:
            median = stats.get(_stat_name(name, 0.5))
            if median is not None:
                cols[name] = F.coalesce(c, F.lit(median).cast(df.schema[name].dataType))
    out = df.withColumns(cols) if cols else df
    cols = {}
    for name, rule in spec.outliers.items():
        lo, hi = _bounds(name, rule, stats)
        if lo is None:
            continue
        c = F.col(name)
        outside = (c < F.lit(lo)) | (c > F.lit(hi))
        if rule.action == "clip":
            clipped = F.least(F.greatest(c, F.lit(lo)), F.lit(hi))
            cols[name] = F.when(outside, clipped.cast(df.schema[name].dataType)).otherwise(c)
            flags = _append(flags, F.coalesce(outside, F.lit(False)), f"clipped({name})")
        else:
            flags = _append(flags, F.coalesce(outside, F.lit(False)), f"outlier({name})")
    out = out.withColumns({**cols, FAILED: failed, FLAGS: flags})
    if spec.dedup:
        candidate = F.size(FAILED) == 0
        w = Window.partitionBy(candidate, *spec.dedup.key).orderBy(
            *[F.col(c).desc_nulls_last() for c in spec.dedup.order_by]
        )
        superseded = candidate & (F.row_number().over(w) > 1)
        out = out.withColumn(
            FAILED,
            _append(F.col(FAILED), superseded, f"cleaning.superseded({','.join(spec.dedup.key)})"),
        )
    return out
