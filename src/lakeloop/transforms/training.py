"""Training-set transforms: each label row gets the features as they were when it happened.

`point_in_time_training_set` is the correct one: a label at time t gets the entity's latest
feature row with `t - lookback <= feature_time <= t`, never one from after t. `naive_latest_join`
is the common mistake (each entity's latest feature row, whatever the label's time), kept as the
baseline that benchmarks and tests compare against. Both return one row per label row: the label
columns, the feature columns (every column of `features` but the entity key) and
`_has_features`."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

HAS_FEATURES = "_has_features"

# Internal columns of the as-of union; the double underscore keeps them clear of user columns.
_KEY = "__pit_key"
_TIME = "__pit_time"
_KIND = "__pit_kind"  # 0: a feature row, 1: a label row (so a feature at the label's time is seen)
_ORDER = "__pit_order"
_LABEL = "__pit_label"
_FEATURE = "__pit_feature"
_TIMESTAMPS = (T.TimestampType, T.TimestampNTZType)


def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found (has {sorted(df.columns)})")


def _require_timestamp(df: DataFrame, column: str, what: str) -> None:
    dtype = df.schema[column].dataType
    if not isinstance(dtype, _TIMESTAMPS):
        raise ValueError(
            f"{what}: column {column!r} must be a timestamp, not {dtype.simpleString()} "
            "(cast it first)"
        )


def _check_inputs(
    labels: DataFrame, features: DataFrame, entity_key: str
) -> tuple[list[str], Column]:
    """Validates what both joins need. Returns the feature columns that go into the output and
    the entity key as a column of one type on both sides (integer keys of different
    widths become bigint; other type differences are an error, never a silent cast)."""
    if not entity_key:
        raise ValueError("entity_key must be a column name")
    _require(labels, [entity_key], "labels")
    _require(features, [entity_key], "features")
    lt, ft = labels.schema[entity_key].dataType, features.schema[entity_key].dataType
    key_type = lt
    if lt != ft:
        if isinstance(lt, T.IntegralType) and isinstance(ft, T.IntegralType):
            key_type = T.LongType()
        else:
            raise ValueError(
                f"entity key {entity_key!r} is {lt.simpleString()} in labels but "
                f"{ft.simpleString()} in features (cast one side first)"
            )
    feature_cols = [c for c in features.columns if c != entity_key]
    clash = sorted(set(labels.columns) & {*feature_cols, HAS_FEATURES})
    if clash:
        raise ValueError(
            f"labels and features both have column(s) {clash} (or they use the reserved name "
            f"{HAS_FEATURES!r}); rename or drop them on one side first"
        )
    return feature_cols, _col(entity_key).cast(key_type)


def _col(name: str) -> Column:
    """A top-level column by its exact name (dots in it are not struct paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _orderable(dtype: T.DataType) -> bool:
    if isinstance(dtype, T.MapType | T.VariantType):
        return False
    if isinstance(dtype, T.ArrayType):
        return _orderable(dtype.elementType)
    if isinstance(dtype, T.StructType):
        return all(_orderable(f.dataType) for f in dtype.fields)
    return True


def _tie_break(features: DataFrame, columns: list[str]) -> Column | None:
    """A total order on feature rows with equal feature_time: by the values of the columns, in
    order (a map or variant column compares by its JSON text). None when the struct of the
    columns itself is orderable (then order by that struct)."""
    if all(_orderable(features.schema[c].dataType) for c in columns):
        return None
    parts: list[Column] = []
    for c in columns:
        col = _col(c)
        parts.append(col if _orderable(features.schema[c].dataType) else F.to_json(col))
    return F.struct(*parts)


def _output(labels: DataFrame, feature_cols: list[str], joined: DataFrame) -> DataFrame:
    return joined.select(
        *[F.col(_LABEL).getField(c).alias(c) for c in labels.columns],
        *[F.col(_FEATURE).getField(c).alias(c) for c in feature_cols],
        F.col(_FEATURE).isNotNull().alias(HAS_FEATURES),
    )


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
    entity_key: str,
    label_time: str,
    feature_time: str,
    lookback_days: int,
    feature_date: str | None = "feature_date",
    label_date_bounds: tuple[dt.date, dt.date] | None = None,
) -> DataFrame:
    """Each label row with the features of its entity as of the label's time.

    For a label at time t, the chosen feature row is the entity's latest one with
    `t - lookback_days * 24h <= feature_time <= t` (a row at exactly t counts; a row after t
    never does). Feature rows with equal feature_time are ordered by the values of the other
    feature columns, in column order, and the largest wins, so the result is deterministic.

    Exactly one output row per label row, duplicates included: a label with no feature row in
    its look-back (or a null key or time) keeps null features and `_has_features` false.
    Output columns: the label columns, every column of `features` except `entity_key` (so
    `feature_time` tells how old the features are), then `_has_features`.

    `label_date_bounds` (lo, hi), when given, must cover the dates of every label time; feature
    rows are then filtered on the `feature_date` partition column with literal bounds before
    anything else (see `pruned_features`), which a partitioned Parquet/Delta scan turns into
    partition pruning. Without bounds every feature row is read.

    As-of join without a range join: labels and features are unioned, sorted by time within each
    entity, and each label row takes the last feature row before it (a running `last` over a
    window). That is one shuffle by entity and no row explosion, whatever the look-back."""
    feature_cols, key = _check_inputs(labels, features, entity_key)
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

    feature_struct = F.struct(*[_col(c) for c in feature_cols])
    label_struct = F.struct(*[_col(c) for c in labels.columns])
    # Ties on feature_time: by the feature struct itself, or a separate key if it is unorderable.
    tie_break = _tie_break(features, feature_cols)
    order = _FEATURE if tie_break is None else _ORDER
    feature_rows = features.where(key.isNotNull() & _col(feature_time).isNotNull()).select(
        key.alias(_KEY),
        _col(feature_time).alias(_TIME),
        F.lit(0).alias(_KIND),
        *([] if tie_break is None else [tie_break.alias(_ORDER)]),
        F.lit(None).cast(labels.select(label_struct).schema[0].dataType).alias(_LABEL),
        feature_struct.alias(_FEATURE),
    )
    label_rows = labels.select(
        key.alias(_KEY),
        _col(label_time).alias(_TIME),
        F.lit(1).alias(_KIND),
        *(
            []
            if tie_break is None
            else [F.lit(None).cast(feature_rows.schema[_ORDER].dataType).alias(_ORDER)]
        ),
        label_struct.alias(_LABEL),
        F.lit(None).cast(feature_rows.schema[_FEATURE].dataType).alias(_FEATURE),
    )
    w = (
        Window.partitionBy(_KEY)
        .orderBy(F.col(_TIME).asc_nulls_first(), F.col(_KIND), F.col(order))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    as_of = F.last(_FEATURE, ignorenulls=True).over(w)
    earliest = F.col(_LABEL).getField(label_time) - F.make_dt_interval(days=F.lit(lookback_days))
    in_lookback = F.col(_FEATURE).getField(feature_time) >= earliest
    joined = (
        feature_rows.unionByName(label_rows)
        .withColumn(_FEATURE, as_of)
        .where(F.col(_KIND) == 1)
        .withColumn(_FEATURE, F.when(in_lookback, F.col(_FEATURE)))
    )
    return _output(labels, feature_cols, joined)


def naive_latest_join(
    labels: DataFrame, features: DataFrame, entity_key: str, feature_time: str
) -> DataFrame:
    """Each label row with its entity's latest feature row overall, whatever the label's time.

    THIS LEAKS THE FUTURE: a label from March gets features computed in June, so a model trained
    on it looks better offline than it can be in production. It is the mistake
    `point_in_time_training_set` exists to prevent, kept as the baseline for tests and
    benchmarks. Same output shape and tie rule as `point_in_time_training_set`; a label whose
    entity has no feature row keeps null features and `_has_features` false."""
    feature_cols, key = _check_inputs(labels, features, entity_key)
    _require(features, [feature_time], "features")
    feature_struct = F.struct(*[_col(c) for c in feature_cols])
    tie_break = _tie_break(features, feature_cols)
    order = F.struct(_col(feature_time), feature_struct if tie_break is None else tie_break)
    latest_row = F.max_by(feature_struct, order)
    latest = (
        features.where(key.isNotNull() & _col(feature_time).isNotNull())
        .groupBy(key.alias(_KEY))
        .agg(latest_row.alias(_FEATURE))
    )
    keyed = labels.select(
        key.alias(_KEY), F.struct(*[_col(c) for c in labels.columns]).alias(_LABEL)
    )
    return _output(labels, feature_cols, keyed.join(latest, on=_KEY, how="left"))
