"""Spec-driven cleaning of rows that passed the validation gate: string normalisation,
missing values (drop / fill a constant / fill the batch median), outliers (clip or flag by IQR
or quantiles) and de-duplication by key keeping the latest row. Rows that cleaning removes (drop,
superseded duplicates) are not lost: they get a rule name in `_failed_rules` and go to
quarantine. Batch statistics come in as a dict computed by the job from `cleaning_stats`.

De-duplication holds across the whole silver table, not only within one date. `cleaned` keeps
the latest row per key among one date's rows (the date's "day winner"); `across_dates` then
ranks each key's day winners of every date (this date's fresh ones, the others as silver and
quarantine hold them) by the effective order `dedup_order`: `_ingest_date` is the implicit
first level unless `order_by` names it itself (then it stands where the spec puts it), so a
corrected re-delivery that arrives later wins, and positions such as `_offset` or
`_source_position` are only ever compared within one arrival date. A day winner that loses to
another date's row goes to quarantine of its own date with the reason
`cleaning.superseded(<key>): a later row ingested <date of the row that won>`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop.config import SpecError
from lakeloop.quality.rules import FAILED
from lakeloop.spec import CleaningSpec, Dedup, OutlierRule, Projection
from lakeloop.transforms.features import resolved_sql

FLAGS = "_flags"
INGEST_DATE = "_ingest_date"
SOURCE = "_dedup_source"  # a row of `across_dates`: "date" (the date's), "silver", "quarantine"
WINNER = "_winner_date"  # its key's latest row's `_ingest_date`


def projected(df: DataFrame, project: Projection, where: str) -> DataFrame:
    """`df` (bronze rows) with the silver step's projection: renamed, derived columns added
    (each Spark SQL expression checked, a failure a SpecError naming `<where>.columns.<name>`),
    then only the selected (or not dropped) data columns; lineage columns (`_...`) all stay."""
    if not project:
        return df
    data = [c for c in df.columns if not c.startswith("_")]
    try:
        keep = project.apply(data)
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None
    out = df.withColumnsRenamed(project.rename)
    for name, sql in project.columns.items():  # one at a time, to name the one that fails
        out = resolved_sql(
            f"{where}.columns.{name}", sql, lambda c, o=out, n=name: o.withColumn(n, c)
        )
    lineage = [c for c in df.columns if c.startswith("_")]
    return out.select(*keep, *lineage)


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
        used += [(f"dedup.key.{c}", c) for c in spec.dedup.key_columns]
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
        # Per key, rows still passing first; the last level (a hash of the row) keeps the
        # same row on every run even when `order_by` ties.
        candidate = F.size(FAILED) == 0
        hashable = [f.name for f in df.schema.fields if not isinstance(f.dataType, T.MapType)]
        w = Window.partitionBy(*spec.dedup.key_columns).orderBy(
            candidate.desc(),
            *[F.col(c).desc_nulls_last() for c in spec.dedup.order_by],
            F.xxhash64(*hashable).desc(),
        )
        superseded = candidate & (F.row_number().over(w) > 1)
        out = out.withColumn(
            FAILED,
            _append(
                F.col(FAILED),
                superseded,
                f"cleaning.superseded({','.join(spec.dedup.key_columns)})",
            ),
        )
    return out


def dedup_order(spec: Dedup) -> list[str]:
    """The order that picks the row kept per key across dates (latest first): `_ingest_date`
    first unless `order_by` names it (then where the spec puts it), then `order_by`."""
    order = list(spec.order_by)
    return order if INGEST_DATE in order else [INGEST_DATE, *order]


def superseded_prefix(spec: Dedup) -> str:
    """The start of the reason of a row superseded by a row of another date (the date follows)."""
    return f"cleaning.superseded({','.join(spec.key_columns)}): a later row ingested "


def superseded_across_dates(spec: Dedup) -> Column:
    """True on a quarantine row whose one failure is a row of another date that superseded it
    (a day winner that lost: it comes back to silver if that row goes)."""
    only = (F.size(FAILED) == 1) & F.get(FAILED, 0).startswith(superseded_prefix(spec))
    return F.coalesce(only, F.lit(False))


def stored_rows(
    silver: DataFrame, quarantine: DataFrame, spec: Dedup, like: DataFrame
) -> DataFrame:
    """The day winners of other dates as validate stored them: every silver row and every
    quarantine row superseded across dates; their key and order columns typed as in `like` (the
    date's rows), `_dedup_source` ("silver" / "quarantine") and `_failed_rules`."""
    cols = list(dict.fromkeys([*spec.key_columns, *dedup_order(spec)]))
    typed = [F.col(c).cast(like.schema[c].dataType).alias(c) for c in cols]
    none = F.lit(None).cast("array<string>")
    return silver.select(*typed, F.lit("silver").alias(SOURCE), none.alias(FAILED)).unionByName(
        quarantine.where(superseded_across_dates(spec)).select(
            *typed, F.lit("quarantine").alias(SOURCE), F.col(FAILED)
        )
    )


def across_dates(candidates: DataFrame, stored: DataFrame, spec: Dedup) -> DataFrame:
    """One date's rows after `cleaned` (`_dedup_source` "date") with the other dates'
    `stored_rows`, each with `_winner_date`: the `_ingest_date` of its key's latest row by
    `dedup_order` among the date's rows that passed everything and the stored ones (one row per
    key and date, so no ties). A row of the date that passed but loses to another date's row
    gets `cleaning.superseded(<key>): a later row ingested <that date>` as its failed rule."""
    competes = (F.col(SOURCE) != "date") | (F.size(FAILED) == 0)
    rank = F.when(competes, F.struct(*dedup_order(spec)))
    winner = F.max(rank).over(Window.partitionBy(*spec.key_columns))[INGEST_DATE]
    lost = (F.col(SOURCE) == "date") & competes & (F.col(WINNER) != F.col(INGEST_DATE))
    return (
        candidates.withColumn(SOURCE, F.lit("date"))
        .unionByName(stored, allowMissingColumns=True)
        .withColumn(WINNER, winner)
        .withColumn(FAILED, F.when(lost, F.array(_superseded(spec))).otherwise(F.col(FAILED)))
    )


def _superseded(spec: Dedup) -> Column:
    return F.concat(F.lit(superseded_prefix(spec)), F.date_format(WINNER, "yyyy-MM-dd"))


def stored_changes(decided: DataFrame, spec: Dedup) -> DataFrame:
    """The stored rows of `across_dates` whose place changes, with `_change`: "to_quarantine"
    (a silver row now superseded), "to_silver" (a superseded row whose winner went) or
    "new_winner" (still superseded, by a row of another date than its reason says)."""
    source, won = F.col(SOURCE), F.col(WINNER) == F.col(INGEST_DATE)
    change = (
        F.when((source == "silver") & ~won, F.lit("to_quarantine"))
        .when((source == "quarantine") & won, F.lit("to_silver"))
        .when((source == "quarantine") & (F.get(FAILED, 0) != _superseded(spec)), "new_winner")
    )
    return (
        decided.where(source != "date").withColumn("_change", change).where("_change is not null")
    )


def redecided(
    silver: DataFrame, quarantine: DataFrame, decided: DataFrame, spec: Dedup
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The stored rows of other dates (`silver`, `quarantine`: full rows) placed by the winners
    of `across_dates`: (silver rows, quarantine rows that stay as they are, day winners now
    superseded with their reason in `_failed_rules`, in silver's columns + `_failed_rules`)."""
    marked = superseded_across_dates(spec)
    columns = silver.columns
    competing = silver.unionByName(quarantine.where(marked).select(*columns))
    w = decided.where(F.col(WINNER).isNotNull()).select(
        *[F.col(k).alias(f"_w_{k}") for k in spec.key_columns], WINNER
    )
    w = w.dropDuplicates([f"_w_{k}" for k in spec.key_columns])
    on = [F.col(k).eqNullSafe(F.col(f"_w_{k}")) for k in spec.key_columns]
    placed = competing.join(w, on, "left")
    won = F.coalesce(F.col(WINNER) == F.col(INGEST_DATE), F.lit(True))
    lost = placed.where(~won).withColumn(FAILED, F.array(_superseded(spec)))
    return (
        placed.where(won).select(*columns),
        quarantine.where(~marked),
        lost.select(*columns, FAILED),
    )
