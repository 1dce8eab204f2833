"""The champion's reference profile: what the monitor compares each day against.

Written when `train` registers a model: the profile of every model feature over the model's
training set (the rows it learned from, at the Delta version logged with the model) and of its
predictions on the held-out test window (prediction drift's reference) — as rows of the
`metrics_reference` table (replaced per model version) and as the MLflow artifact
`reference_profile.json` on the model's run. A champion registered before profiles existed has
none: the monitor then says to retrain it (the profile is of the rows it learned from, which
only train knows for sure)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeloop import delta_io
from lakeloop.ml import tracking
from lakeloop.ml.pipeline import PREDICTION, PROBABILITY
from lakeloop.monitoring import drift
from lakeloop.monitoring.tables import REFERENCE
from lakeloop.spec import ModelSpec, Pipeline, PipelineSpec

log = logging.getLogger(__name__)

FEATURES, PREDICTIONS = "features", "prediction"
SCORE = "prediction"  # the prediction profile's one feature: the prediction or P(positive)
ARTIFACT = "reference_profile.json"

HEADER = T.StructType(
    [
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.IntegerType(), False),
        T.StructField("model_run_id", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("training_set_version", T.LongType(), True),
        T.StructField("role", T.StringType(), False),  # features | prediction
    ]
)


@dataclass(frozen=True)
class Reference:
    features: dict[str, drift.FeatureProfile]
    prediction: drift.FeatureProfile


def reference_schema() -> T.StructType:
    return T.StructType([*HEADER.fields, *drift.PROFILE_SCHEMA.fields])


def scores(scored: DataFrame, m: ModelSpec, column: str | None = None) -> DataFrame:
    """One column SCORE: what the prediction drift compares: the prediction of a regressor,
    P(positive) of a classifier. `column`: a plain double column already holding it (the
    predictions table's); default: MLlib's output (PREDICTION / the PROBABILITY vector)."""
    if column:
        return scored.select(F.col(column).cast("double").alias(SCORE))
    if m.task == "classification":
        return scored.select(vector_to_array(PROBABILITY)[1].alias(SCORE))
    return scored.select(F.col(PREDICTION).cast("double").alias(SCORE))


def profile(rows: DataFrame, scored_test: DataFrame, spec: PipelineSpec) -> Reference:
    """The profiles of the model's and the watched features (monitoring.features) over the
    training rows, and of the model's scores on the test window. A feature is categorical when
    the model treats it so or it is a string column."""
    m = spec.model
    columns = list(
        dict.fromkeys([*m.features.numeric, *m.features.categorical, *spec.watched_features])
    )
    missing = [c for c in columns if c not in rows.columns]
    if missing:  # train goes on: the monitor refuses a watched feature without a profile
        log.warning(
            "monitoring.features %s are not columns of the training set: not profiled (it has: %s)",
            missing,
            ", ".join(c for c in rows.columns if not c.startswith("_")),
        )
        columns = [c for c in columns if c in rows.columns]
    strings = {f.name for f in rows.schema.fields if isinstance(f.dataType, T.StringType)}
    categorical = [c for c in columns if c in m.features.categorical or c in strings]
    numeric = [c for c in columns if c not in categorical]
    features = drift.profile(rows, numeric, categorical)
    prediction = drift.profile(scores(scored_test, m), [SCORE], [])[SCORE]
    return Reference(features, prediction)


def record(
    spark: SparkSession,
    pipeline: Pipeline,
    ref: tracking.ModelRef,
    reference: Reference,
    run_id: str,
    training_set_version: int | None,
) -> None:
    """Write `reference` as the rows of model version `ref.version` in metrics_reference
    (replacing any earlier profile of that version) and as the MLflow artifact."""
    head = (ref.name, ref.version, ref.run_id, run_id, training_set_version)
    rows = [(*head, FEATURES, *r) for r in drift.profile_rows(reference.features)]
    rows += [(*head, PREDICTIONS, *r) for r in drift.profile_rows({SCORE: reference.prediction})]
    df = spark.createDataFrame(rows, reference_schema())
    path = pipeline.table_path(REFERENCE)
    delta_io.replace_partition(
        df, path, "model_version", str(ref.version), run_id, partition_by="model_version"
    )
    client = tracking.configure(pipeline.cfg)
    artifact = {
        FEATURES: json.loads(drift.to_json(reference.features)),
        PREDICTIONS: json.loads(drift.to_json({SCORE: reference.prediction})),
    }
    client.log_text(ref.run_id, json.dumps(artifact, indent=1), ARTIFACT)
    log.info(
        "reference profile of %s v%d: %d features -> %s",
        ref.name,
        ref.version,
        len(reference.features),
        pipeline.spec.table(REFERENCE),
    )


def load(spark: SparkSession, pipeline: Pipeline, ref: tracking.ModelRef) -> Reference | None:
    """The stored profile of model version `ref` (None when it has none)."""
    path = pipeline.table_path(REFERENCE)
    if delta_io.version(spark, path) is None:
        return None
    rows = (
        delta_io.read(spark, path)
        .where((F.col("model_name") == ref.name) & (F.col("model_version") == ref.version))
        .collect()  # one small row per feature
    )
    if not rows:
        return None
    fields = drift.PROFILE_SCHEMA.fieldNames()

    def of(role: str) -> dict[str, drift.FeatureProfile]:
        picked = [tuple(r[f] for f in fields) for r in rows if r["role"] == role]
        return drift.profiles_from_rows(picked)

    predictions = of(PREDICTIONS)
    if SCORE not in predictions:
        return None
    return Reference(of(FEATURES), predictions[SCORE])
