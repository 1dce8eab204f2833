"""Training and scoring transforms: the model's input frame, the time-based split and folds,
the naive baseline's label summary and constant predictions, and the day's scored entities.
Pure: models and bounds come in as arguments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop.config import SpecError
from lakeloop.ml.pipeline import (
    LABEL,
    PREDICTION,
    PROBABILITY,
    RAW_PREDICTION,
    Baseline,
    required_columns,
)
from lakeloop.spec import ModelSpec, key_columns
from lakeloop.timezones import local_date
from lakeloop.transforms.training import HAS_FEATURES

FOLD = "__ll_fold"
PREDICTION_DATE = "prediction_date"
ERROR = "_error"


@dataclass(frozen=True)
class ScoringModel:
    """A fitted pipeline and where it came from in the registry."""

    model: PipelineModel
    name: str
    version: int
    run_id: str


def _spec_columns(spec: ModelSpec, **others: str) -> dict[str, str]:
    """Column -> the spec key that names it: the model's features, plus `others` (key=column)."""
    keys = {c: "model.features.numeric" for c in spec.features.numeric}
    keys.update({c: "model.features.categorical" for c in spec.features.categorical})
    keys.update({c: k.replace("__", ".") for k, c in others.items()})
    return keys


def _missing(df: DataFrame, columns: dict[str, str], what: str) -> None:
    """A SpecError naming the spec key and column of each of `columns` that `df` lacks."""
    absent = [f"{key} ({c})" for c, key in columns.items() if c not in df.columns]
    if absent:
        has = ", ".join(c for c in df.columns if not c.startswith("_"))
        raise SpecError(f"{', '.join(absent)}: no such column in {what} (it has: {has})")


def model_input(
    training_set: DataFrame, spec: ModelSpec, label: str, time_column: str
) -> DataFrame:
    """Training rows that have features, every column kept (a champion trained on another spec
    may read others), plus the label as a double in LABEL. Booleans become 0/1; a string label
    is an error (index it upstream)."""
    _missing(
        training_set,
        _spec_columns(spec, model__label=label, label__event_time=time_column),
        "the training set",
    )
    dtype = training_set.schema[label].dataType
    if not isinstance(dtype, T.NumericType | T.BooleanType):
        raise ValueError(
            f"label {label!r} is {dtype.simpleString()}; a model needs a numeric or boolean label"
        )
    rows = training_set
    if HAS_FEATURES in training_set.columns:
        rows = rows.where(F.col(HAS_FEATURES))
    return rows.withColumn(LABEL, F.col(label).cast("double"))


def split_by_time(
    df: DataFrame, time_column: str, test_start: dt.date, zone: str
) -> tuple[DataFrame, DataFrame]:
    """(train, test): rows before `test_start` and rows on or after it, by the local date of
    the label time in `zone` (the pipeline's time zone)."""
    day = local_date(time_column, zone)
    return df.where(day < F.lit(test_start)), df.where(day >= F.lit(test_start))


def label_summary(rows: DataFrame) -> DataFrame:
    """One row: `rows`, and the `mean` and `median` of LABEL (the naive baselines' constants).
    The median is percentile_approx with a rank error of at most 1/10,000 of the rows."""
    return rows.agg(
        F.count(F.lit(1)).alias("rows"),
        F.avg(LABEL).alias("mean"),
        F.percentile_approx(LABEL, 0.5, 10_000).cast("double").alias("median"),
    )


def with_baseline_prediction(df: DataFrame, baseline: Baseline) -> DataFrame:
    """`df` scored by a constant model, in the columns the spec's evaluators read: PREDICTION,
    and for a classifier PROBABILITY and RAW_PREDICTION as [1 - p, p] (one score for every row:
    AUC 0.5)."""
    out = df.withColumn(PREDICTION, F.lit(float(baseline.prediction)))
    if baseline.probability is None:
        return out
    p = float(baseline.probability)
    scores = array_to_vector(F.array(F.lit(1.0 - p), F.lit(p)))
    return out.withColumn(PROBABILITY, scores).withColumn(RAW_PREDICTION, scores)


def with_time_folds(df: DataFrame, time_column: str, boundaries: list[dt.datetime]) -> DataFrame:
    """Adds FOLD: 0 for rows before boundaries[0], k for rows in [boundaries[k-1],
    boundaries[k]), ... so each fold is one contiguous slice of time. Naive boundaries are UTC
    (PySpark would read them in the Python process's local time zone)."""
    ts = F.col(time_column)
    fold: Column = F.lit(0)
    aware = [b if b.tzinfo else b.replace(tzinfo=dt.UTC) for b in boundaries]
    for b in sorted(aware):
        fold = fold + F.when(ts >= F.lit(b), 1).otherwise(0)
    return df.withColumn(FOLD, fold.cast("int"))


def _zero(dtype: T.DataType) -> Column:
    return F.lit(0).cast(dtype)


def _scored(df: DataFrame, m: ScoringModel, spec: ModelSpec, prefix: str) -> DataFrame:
    out = m.model.transform(df)
    cols = [F.col(PREDICTION).alias(f"{prefix}prediction")]
    if spec.task == "classification":
        cols.append(vector_to_array(PROBABILITY)[1].alias(f"{prefix}probability"))
    return out.select(*df.columns, *cols)


def scored_entities(
    entities: DataFrame,
    champion: ScoringModel,
    challenger: ScoringModel | None,
    spec: ModelSpec,
    entity_key: str | list[str],
    timestamp: str,
    date: dt.date,
) -> DataFrame:
    """One row per entity: its champion prediction (and the challenger's beside it, shadow
    scoring), with the models' name/version/run id on every row. An entity missing a required
    (non-imputed) feature is kept with null predictions and `_error` naming the features."""
    _missing(
        entities,
        {
            **_spec_columns(spec, features__timestamp=timestamp),
            **{k: "entity_key" for k in key_columns(entity_key)},
        },
        "the feature table",
    )
    required = required_columns(spec)
    missing = F.concat_ws(
        ", ", *[F.when(F.col(c).isNull(), F.lit(c)) for c in required] or [F.lit(None)]
    )
    # every column stays: a challenger trained on another spec may read other features
    base = entities.select(
        *[
            F.coalesce(F.col(c), _zero(entities.schema[c].dataType)).alias(c)
            if c in required
            else F.col(c)
            for c in entities.columns
            if c != ERROR
        ],
        # concat with null is null: no row-level condition, the list is built once
        F.concat(F.lit("missing feature(s): "), F.nullif(missing, F.lit(""))).alias(ERROR),
    )
    scored = _scored(base, champion, spec, "")
    if challenger is not None:
        scored = _scored(scored, challenger, spec, "challenger_")
    ok = F.col(ERROR).isNull()
    pred = lambda name: F.when(ok, F.col(name)).cast("double")  # noqa: E731
    null = lambda t: F.lit(None).cast(t)  # noqa: E731
    cols = [
        *[F.col(k) for k in key_columns(entity_key)],
        F.col(timestamp).alias("feature_ts"),
        F.lit(date).alias(PREDICTION_DATE),
        pred("prediction").alias("prediction"),
    ]
    if spec.task == "classification":
        cols.append(pred("probability").alias("probability"))
    cols += [
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).alias("model_version"),
        F.lit(champion.run_id).alias("model_run_id"),
    ]
    # the challenger's columns are always there (null without one): one schema either way
    shadow = (lambda name: pred(name)) if challenger else (lambda _name: null("double"))
    cols.append(shadow("challenger_prediction").alias("challenger_prediction"))
    if spec.task == "classification":
        cols.append(shadow("challenger_probability").alias("challenger_probability"))
    cols += [
        (F.lit(challenger.version) if challenger else null("int")).alias("challenger_version"),
        (F.lit(challenger.run_id) if challenger else null("string")).alias("challenger_run_id"),
    ]
    return scored.select(*cols, F.col(ERROR))
