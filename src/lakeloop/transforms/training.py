"""Training-set transforms: each label row gets the features as they were when it happened.

`point_in_time_training_set` is the correct one: a label at time t gets the entity's latest
feature row with `t - lookback <= feature_time <= t`, never one from after t. `naive_latest_join`
is the common mistake (each entity's latest feature row, whatever the label's time), kept as the
baseline that benchmarks and tests compare against. Both return one row per label row: the label
columns, the feature columns (every column of `features` but the entity key) and
`_has_features`. The entity key is one column or several (a composite key).

`as_of_join` is the as-of technique itself (a union of both sides and a running `last` over a
window per key), shared with the lookup features (`lakeloop.transforms.lookups`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

HAS_FEATURES = "_has_features"

# Internal columns of the as-of union; the double underscore keeps them clear of user columns.
_KEY = "__pit_key"  # __pit_key0, __pit_key1, ...: one per key column
_TIME = "__pit_time"
_KIND = "__pit_kind"  # 0: a right row, 1: a left row (so a right row at the left's time is seen)
_ORDER = "__pit_order"
_LEFT = "__pit_left"
_RIGHT = "__pit_right"
TIMESTAMP_TYPES = (T.TimestampType, T.TimestampNTZType)


def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found (has {sorted(df.columns)})")


def _require_timestamp(df: DataFrame, column: str, what: str) -> None:
    dtype = df.schema[column].dataType
    if not isinstance(dtype, TIMESTAMP_TYPES):
        raise ValueError(
            f"{what}: column {column!r} must be a timestamp, not {dtype.simpleString()} "
            "(cast it first)"
        )


def _col(name: str) -> Column:
    """A top-level column by its exact name (dots in it are not struct paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _key_list(key: str | Sequence[str], what: str = "entity_key") -> list[str]:
    """A key as a list of column names (one name, or a composite key)."""
    cols = [key] if isinstance(key, str) else list(key)
    if not cols or not all(isinstance(c, str) and c for c in cols):
        raise ValueError(f"{what} must be a column name or a non-empty list of them, not {key!r}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise ValueError(f"{what}: column(s) {dup} listed twice")
    return cols


def matched_keys(
    left: DataFrame,
    right: DataFrame,
    left_keys: list[str],
    right_keys: list[str],
    names: tuple[str, str] = ("labels", "features"),
    what: str = "entity key",
) -> tuple[list[Column], list[Column]]:
    """The key columns of both sides (paired in order), each cast to one type per pair: equal
    types stay, integers of different widths become bigint; any other difference is a
    ValueError naming the column and both types, never a silent cast."""
    if len(left_keys) != len(right_keys):
        raise ValueError(f"{what}: {left_keys} and {right_keys} differ in length")
    lcols: list[Column] = []
    rcols: list[Column] = []
    for lk, rk in zip(left_keys, right_keys, strict=True):
        lt, rt = left.schema[lk].dataType, right.schema[rk].dataType
        key_type = lt
        if lt != rt:
            if isinstance(lt, T.IntegralType) and isinstance(rt, T.IntegralType):
                key_type = T.LongType()
            else:
                other = "" if lk == rk else f"{rk!r} is "
                raise ValueError(
                    f"{what} {lk!r} is {lt.simpleString()} in {names[0]} but {other}"
                    f"{rt.simpleString()} in {names[1]} (cast one side first)"
                )
        lcols.append(_col(lk).cast(key_type))
        rcols.append(_col(rk).cast(key_type))
    return lcols, rcols


def _orderable(dtype: T.DataType) -> bool:
    if isinstance(dtype, T.MapType | T.VariantType):
        return False
    if isinstance(dtype, T.ArrayType):
        return _orderable(dtype.elementType)
    if isinstance(dtype, T.StructType):
        return all(_orderable(f.dataType) for f in dtype.fields)
    return True


def _comparable(df: DataFrame, columns: list[str]) -> Column:
    """A struct of the columns that orders rows by their values, in column order (a map or
    variant column compares by its JSON text)."""
    return F.struct(
        *[_col(c) if _orderable(df.schema[c].dataType) else F.to_json(_col(c)) for c in columns]
    )


def as_of_join(
    left: DataFrame,
    right: DataFrame,
    left_keys: list[Column],
    right_keys: list[Column],
    left_time: str,
    right_time: str,
    max_age: dt.timedelta | None,
    columns: dict[str, str],
    order_by: Sequence[str] = (),
    found: str | None = None,
) -> DataFrame:
    """Every left row exactly once (duplicates included) with `columns` (output name -> right
    column) of the latest right row with the same key and
    `left_time - max_age <= right_time <= left_time` (a right row at exactly the left's time
    counts; a later one never does). Right rows with equal `right_time` are ordered by the
    `order_by` columns, then by the values of `columns`, and the largest wins (a null in
    `order_by` loses), so the choice is deterministic. No such row, a null in a left key or a
    null left time gives nulls. `found` names an optional boolean column: a right row was
    taken. `max_age` None: no age limit. Output: the left columns, then `columns`, then
    `found`.

    `left_keys` / `right_keys` are paired key columns of one type each (see `matched_keys`).
    The caller checks that the named columns exist and that both times are timestamps.

    No range join: both sides are unioned, sorted by time within each key, and each left row
    takes the last right row before it (a running `last` over a window). That is one shuffle
    by key and no row explosion, whatever `max_age`."""
    payload = list(dict.fromkeys(columns.values()))
    order = list(order_by)
    by_value = all(_orderable(right.schema[c].dataType) for c in [*order, *payload])
    # The right row as a struct (time, order_by values, payload). When every part is orderable
    # the struct itself is the window's tie-break; else a comparable copy goes in _ORDER.
    parts = [_col(right_time).alias("t")]
    if order:
        parts.append(F.struct(*[_col(c) for c in order]).alias("o"))
    parts.append(F.struct(*[_col(c) for c in payload]).alias("v"))
    right_struct = F.struct(*parts)
    left_struct = F.struct(*[_col(c) for c in left.columns])
    keys = [f"{_KEY}{i}" for i in range(len(left_keys))]
    has_key = F.lit(True)
    for k in right_keys:
        has_key = has_key & k.isNotNull()
    tie: list[Column] = []
    if not by_value:
        ranks = [_comparable(right, order)] if order else []
        tie = [F.struct(*ranks, _comparable(right, payload)).alias(_ORDER)]
    right_rows = right.where(has_key & _col(right_time).isNotNull()).select(
        *[k.alias(n) for k, n in zip(right_keys, keys, strict=True)],
        _col(right_time).alias(_TIME),
        F.lit(0).alias(_KIND),
        *tie,
        F.lit(None).cast(left.select(left_struct).schema[0].dataType).alias(_LEFT),
        right_struct.alias(_RIGHT),
    )
    left_rows = left.select(
        *[k.alias(n) for k, n in zip(left_keys, keys, strict=True)],
        _col(left_time).alias(_TIME),
        F.lit(1).alias(_KIND),
        *([] if by_value else [F.lit(None).cast(right_rows.schema[_ORDER].dataType).alias(_ORDER)]),
        left_struct.alias(_LEFT),
        F.lit(None).cast(right_rows.schema[_RIGHT].dataType).alias(_RIGHT),
    )
    w = (
        Window.partitionBy(*keys)
        .orderBy(
            F.col(_TIME).asc_nulls_first(), F.col(_KIND), F.col(_RIGHT if by_value else _ORDER)
        )
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    latest = F.last(_RIGHT, ignorenulls=True).over(w)
    fresh = F.lit(True)
    if max_age is not None:
        fresh = F.col(_RIGHT).getField("t") >= F.col(_TIME) - F.lit(max_age)
    matched = (
        right_rows.unionByName(left_rows)
        .withColumn(_RIGHT, latest)
        .where(F.col(_KIND) == 1)
        .select(_LEFT, F.when(fresh, F.col(_RIGHT).getField("v")).alias(_RIGHT))
    )
    return matched.select(
        *[F.col(_LEFT).getField(c).alias(c) for c in left.columns],
        *[F.col(_RIGHT).getField(c).alias(name) for name, c in columns.items()],
        *([F.col(_RIGHT).isNotNull().alias(found)] if found else []),
    )


def _check_inputs(
    labels: DataFrame, features: DataFrame, entity_key: str | Sequence[str]
) -> tuple[list[str], list[str], list[Column], list[Column]]:
    """Validates what both joins need. Returns the key columns, the feature columns that go
    into the output, and the key as columns of one type per key column on both sides."""
    keys = _key_list(entity_key)
    _require(labels, keys, "labels")
    _require(features, keys, "features")
    label_keys, feature_keys = matched_keys(labels, features, keys, keys)
    feature_cols = [c for c in features.columns if c not in keys]
    clash = sorted(set(labels.columns) & {*feature_cols, HAS_FEATURES})
    if clash:
        raise ValueError(
            f"labels and features both have column(s) {clash} (or they use the reserved name "
            f"{HAS_FEATURES!r}); rename or drop them on one side first"
        )
    return keys, feature_cols, label_keys, feature_keys


def pruned_features(
    features: DataFrame,
    feature_date: str,
    label_date_bounds: tuple[dt.date, dt.date],
    lookback_days: int,
) -> DataFrame:
    """The feature rows whose `feature_date` can matter to labels dated lo..hi: a filter with
    literal bounds on the partition column, so a Parquet/Delta scan prunes partitions.

    The range is [lo - lookback_days - 1, hi + 1]: the extra day either side keeps rows whose
    `feature_date` was derived in another time zone (or across a DST change) than the labels'
    dates; the exact time condition of the join does the rest."""
    _require(features, [feature_date], "features")
    lo, hi = label_date_bounds
    if lo > hi:
        raise ValueError(f"label_date_bounds: lower bound {lo} is after upper bound {hi}")
    first = lo - dt.timedelta(days=lookback_days + 1)
    last = hi + dt.timedelta(days=1)
    return features.where(_col(feature_date).between(F.lit(first), F.lit(last)))


def point_in_time_training_set(
    labels: DataFrame,
    features: DataFrame,
    entity_key: str | list[str],
    label_time: str,
    feature_time: str,
    lookback_days: int,
    feature_date: str | None = "feature_date",
    label_date_bounds: tuple[dt.date, dt.date] | None = None,
) -> DataFrame:
    """Each label row with the features of its entity as of the label's time.

    `entity_key` is one column or a composite key (a list): every key column must be on both
    sides, and a feature row matches a label row when all of them are equal. For a label at
    time t, the chosen feature row is the entity's latest one with
    `t - lookback_days * 24h <= feature_time <= t` (a row at exactly t counts; a row after t
    never does). Feature rows with equal feature_time are ordered by the values of the other
    feature columns, in column order, and the largest wins, so the result is deterministic.

    Exactly one output row per label row, duplicates included: a label with no feature row in
    its look-back (or a null in any key column, or a null time) keeps null features and
    `_has_features` false. Output columns: the label columns, every column of `features`
    except the key columns (so `feature_time` tells how old the features are), then
    `_has_features`.

    `label_date_bounds` (lo, hi), when given, must cover the dates of every label time; feature
    rows are then filtered on the `feature_date` partition column with literal bounds before
    anything else (see `pruned_features`), which a partitioned Parquet/Delta scan turns into
    partition pruning. Without bounds every feature row is read.

    The join is `as_of_join`: one shuffle by entity, no row explosion, whatever the look-back."""
    _, feature_cols, label_keys, feature_keys = _check_inputs(labels, features, entity_key)
    _require(labels, [label_time], "labels")
    _require(features, [feature_time], "features")
    _require_timestamp(labels, label_time, "labels")
    _require_timestamp(features, feature_time, "features")
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 0:
        raise ValueError(f"lookback_days must be a non-negative int, not {lookback_days!r}")
    if label_date_bounds is not None:
        if feature_date is None:
            raise ValueError("label_date_bounds needs feature_date (the partition column)")
        features = pruned_features(features, feature_date, label_date_bounds, lookback_days)
    return as_of_join(
        labels,
        features,
        label_keys,
        feature_keys,
        label_time,
        feature_time,
        dt.timedelta(days=lookback_days),
        {c: c for c in feature_cols},
        found=HAS_FEATURES,
    )


def naive_latest_join(
    labels: DataFrame, features: DataFrame, entity_key: str | list[str], feature_time: str
) -> DataFrame:
    """Each label row with its entity's latest feature row overall, whatever the label's time.

    THIS LEAKS THE FUTURE: a label from March gets features computed in June, so a model trained
    on it looks better offline than it can be in production. It is the mistake
    `point_in_time_training_set` exists to prevent, kept as the baseline for tests and
    benchmarks. Same key rules, output shape and tie rule as `point_in_time_training_set`; a
    label whose entity has no feature row keeps null features and `_has_features` false."""
    _, feature_cols, label_keys, feature_keys = _check_inputs(labels, features, entity_key)
    _require(features, [feature_time], "features")
    feature_struct = F.struct(*[_col(c) for c in feature_cols])
    order = F.struct(_col(feature_time), _comparable(features, feature_cols))
    names = [f"{_KEY}{i}" for i in range(len(label_keys))]
    has_key = F.lit(True)
    for k in feature_keys:
        has_key = has_key & k.isNotNull()
    latest = (
        features.where(has_key & _col(feature_time).isNotNull())
        .groupBy(*[k.alias(n) for k, n in zip(feature_keys, names, strict=True)])
        .agg(F.max_by(feature_struct, order).alias(_RIGHT))
    )
    keyed = labels.select(
        *[k.alias(n) for k, n in zip(label_keys, names, strict=True)],
        F.struct(*[_col(c) for c in labels.columns]).alias(_LEFT),
    )
    joined = keyed.join(latest, on=names, how="left")
    return joined.select(
        *[F.col(_LEFT).getField(c).alias(c) for c in labels.columns],
        *[F.col(_RIGHT).getField(c).alias(c) for c in feature_cols],
        F.col(_RIGHT).isNotNull().alias(HAS_FEATURES),
    )
