"""MLflow logging of a training run: one MLflow run with the lineage tags (training set table,
path, Delta version and rows; git sha, spec hash, lakeloop run id), the spec's parameters and
the tuned ones, the test metrics beside the naive baseline's and the champion's, the CV results,
feature weights and gate decision as artifacts, and the Spark model, registered under the spec's
name. Every tag and parameter is masked (`config.mask`) before it leaves the process."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import mlflow
import mlflow.spark
import pyspark
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema
from pyspark.ml import PipelineModel
from pyspark.sql import types as T

from lakeloop import runlog
from lakeloop.config import mask
from lakeloop.ml import pipeline as mlp
from lakeloop.ml import tracking
from lakeloop.ml.gate import Decision
from lakeloop.spec import ModelSpec, Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced: the tuned model, its scores and the gate's decision."""

    model: PipelineModel
    cv_results: list[tuple[dict, float]]  # (grid point, mean tuning metric over the folds)
    weights: tuple[str, dict[str, float]]  # ("importance" | "coefficient", by feature)
    metrics: dict[str, float]
    decision: Decision
    lineage: dict[str, str]  # tracking.TAG_TABLE/TAG_PATH/TAG_VERSION/TAG_ROWS
    window: tuple[dt.date, dt.date]  # the test window, local days
    signature: ModelSignature | None = None  # the model's input columns (input_signature)


# Spark type -> MLflow column type, for the input columns a model may read
_MLFLOW_TYPES: dict[type[T.DataType], str] = {
    T.BooleanType: "boolean",
    T.ByteType: "integer",
    T.ShortType: "integer",
    T.IntegerType: "integer",
    T.LongType: "long",
    T.FloatType: "float",
    T.DoubleType: "double",
    T.StringType: "string",
}


def input_signature(schema: T.StructType, spec: ModelSpec) -> ModelSignature:
    """The model's inputs as an MLflow signature: each feature column with its type from the
    training set's `schema`, required unless the pipeline takes nulls (imputed numeric and
    categorical features). The online server reads it to check requests and to type values
    as Spark would (serving.models)."""
    optional = {*spec.features.impute, *spec.features.categorical}
    cols = []
    for name in mlp.input_columns(spec):
        dtype = schema[name].dataType
        kind = _MLFLOW_TYPES.get(type(dtype))
        if kind is None:
            raise ValueError(
                f"model feature {name!r} is {dtype.simpleString()}; a model reads numbers, "
                "booleans and strings"
            )
        cols.append(ColSpec(kind, name, required=name not in optional))
    return ModelSignature(inputs=Schema(cols))


def rounded(metrics: dict[str, float]) -> str:
    """Metrics as JSON text rounded to 6 decimals (for the run log)."""
    return json.dumps({k: round(v, 6) for k, v in metrics.items()})


def masked(values: dict[str, object]) -> dict[str, str]:
    """MLflow tags/params as text with secret values hidden (`config.mask`)."""
    return {k: mask(str(v)) for k, v in values.items()}


def log_training_run(
    client: MlflowClient,
    pipeline: Pipeline,
    date: dt.date,
    rec: runlog.RunRecord,
    result: TrainingResult,
    dfs_tmpdir: str,
) -> tracking.ModelRef:
    """One MLflow run (named `<job> <pipeline> <date>`): tags (lineage, git sha, spec hash),
    params, metrics, the CV results, importances and decision as artifacts, and the Spark model,
    registered under the spec's name. `rec` gives the run id and the train/test row counts."""
    m = pipeline.spec.model
    decision = result.decision
    est = result.model.stages[-1]
    best_params = {
        p.name: v for p, v in est.extractParamMap().items() if p.name in m.estimator.grid
    }
    exp = tracking.experiment_id(client, pipeline.cfg, pipeline)
    with mlflow.start_run(experiment_id=exp, run_name=f"{rec.job} {pipeline.name} {date}") as run:
        mlflow.set_tags(
            masked(
                {
                    **result.lineage,
                    tracking.TAG_RUN_DATE: date.isoformat(),
                    tracking.TAG_RUN_ID: rec.run_id,
                    tracking.TAG_GIT_SHA: tracking.git_sha(pipeline.cfg.project_root),
                    tracking.TAG_SPEC_HASH: pipeline.spec_hash(),
                    "lakeloop.pipeline": pipeline.name,
                    "lakeloop.decision": decision.outcome,
                }
            )
        )
        mlflow.log_params(
            masked(
                {
                    "task": m.task,
                    "estimator": m.estimator.type,
                    "label": pipeline.spec.model_label,
                    "features.numeric": ",".join(m.features.numeric),
                    "features.categorical": ",".join(m.features.categorical),
                    "features.impute": json.dumps(m.features.impute),
                    "scaled": m.scaled,
                    "folds": m.tuning.folds,
                    "tuning_metric": m.tuning_metric,
                    "parallelism": pipeline.cfg.training.parallelism,
                    "test_window": f"{result.window[0]}..{result.window[1]}",
                    "timezone": pipeline.spec.timezone,
                    "baseline": decision.baseline.name,
                    "promotion.baseline_margin": m.promotion.baseline_margin,
                    **{f"param.{k}": v for k, v in m.estimator.params.items()},
                    **{f"best.{k}": v for k, v in best_params.items()},
                }
            )
        )
        mlflow.log_metrics(
            {
                **{f"test_{k}": v for k, v in result.metrics.items()},
                f"cv_{m.tuning_metric}": mlp.best_cv_metric(m, [a for _, a in result.cv_results]),
                "train_rows": rec.output_counts["train_rows"],
                "test_rows": rec.output_counts["test_rows"],
                **{f"baseline_test_{k}": v for k, v in decision.baseline_metrics.items()},
                **{f"champion_test_{k}": v for k, v in (decision.champion_metrics or {}).items()},
            }
        )
        mlflow.log_dict(
            [{"params": p, m.tuning_metric: a} for p, a in result.cv_results], "cv_results.json"
        )
        kind, weights = result.weights
        if weights:
            mlflow.log_dict(weights, f"feature_{kind}s.json")
        mlflow.log_text(mask(decision.reason), "decision.txt")
        info = mlflow.spark.log_model(
            result.model,
            artifact_path=tracking.MODEL_ARTIFACT,
            dfs_tmpdir=dfs_tmpdir,  # tracking.dfs_tmpdir: storage the executors share
            registered_model_name=m.name,
            signature=result.signature,
            pip_requirements=[f"pyspark=={pyspark.__version__}"],
        )
    version = int(info.registered_model_version)
    log.info("registered %s v%d (run %s)", m.name, version, run.info.run_id)
    return tracking.ModelRef(m.name, version, run.info.run_id)
