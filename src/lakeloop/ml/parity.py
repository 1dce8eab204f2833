"""The parity gate: a registered model scores the same held-out rows through Spark and through
the online scorer (lakeloop.serving.scorer, no JVM), loaded from the model's MLflow artifact as
`lakeloop serve` loads it. A difference above `TOLERANCE · max(1, |y|)` in a prediction or a
class probability blocks the model's promotion: the online path must give the batch path's
scores.

`spark_scores` runs the Spark side (one transform + collect of at most `rows` test rows);
`compare` is pure."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame

from lakeloop.ml import pipeline as mlp
from lakeloop.ml.tracking import ModelRef
from lakeloop.spec import ModelSpec

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
ROWS = 1000


@dataclass(frozen=True)
class SparkScores:
    records: list[dict]  # the model's input columns, as Spark holds them
    predictions: list[float]
    probabilities: list[tuple[float, ...]] | None  # classification


@dataclass(frozen=True)
class Parity:
    rows: int
    max_prediction_diff: float  # max |a - b| / max(1, |a|)
    max_probability_diff: float | None
    worst_row: int | None  # the row of the largest difference
    error: str | None = None  # the scorer could not load or score the model

    @property
    def max_diff(self) -> float:
        return max(self.max_prediction_diff, self.max_probability_diff or 0.0)

    @property
    def passed(self) -> bool:
        return self.error is None and self.max_diff <= TOLERANCE

    def failure(self) -> str | None:
        """Why the model may not be promoted (None: it passed)."""
        if self.error is not None:
            return f"the online scorer cannot score this model: {self.error}"
        if self.passed:
            return None
        return (
            f"online and batch scores differ: max relative difference {self.max_diff:.3g} "
            f"> {TOLERANCE:g} (row {self.worst_row} of {self.rows} held-out rows)"
        )


def spark_scores(model: PipelineModel, rows: DataFrame, spec: ModelSpec) -> SparkScores:
    """Up to ROWS of `rows` (the test window) scored by Spark, with their input columns."""
    inputs = mlp.input_columns(spec)
    cols = [*inputs, mlp.PREDICTION]
    scored = model.transform(rows.select(*inputs).limit(ROWS))
    if spec.task == "classification":
        scored = scored.withColumn(mlp.PROBABILITY, vector_to_array(mlp.PROBABILITY))
        cols.append(mlp.PROBABILITY)
    got = scored.select(*cols).collect()
    return SparkScores(
        records=[{c: r[c] for c in inputs} for r in got],
        predictions=[float(r[mlp.PREDICTION]) for r in got],
        probabilities=(
            [tuple(map(float, r[mlp.PROBABILITY])) for r in got]
            if spec.task == "classification"
            else None
        ),
    )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(a))


def compare(
    spark: SparkScores,
    predictions: Sequence[float],
    probabilities: Sequence[Sequence[float] | None] | None,
) -> Parity:
    """Spark's scores against the online scorer's of the same records."""
    worst, worst_row = 0.0, None
    for i, (a, b) in enumerate(zip(spark.predictions, predictions, strict=True)):
        d = _rel(a, b)
        if d > worst or d != d:  # NaN counts as the worst
            worst, worst_row = (d if d == d else float("inf")), i
    prob_worst = None
    if spark.probabilities is not None:
        prob_worst = 0.0
        for i, (a, b) in enumerate(zip(spark.probabilities, probabilities or [], strict=True)):
            if b is None or len(a) != len(b):
                d = float("inf")
            else:
                d = max((_rel(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
                d = d if d == d else float("inf")
            if d > prob_worst:
                prob_worst = d
                if d > worst:
                    worst_row = i
    return Parity(len(spark.predictions), worst, prob_worst, worst_row)


def check(client: MlflowClient, ref: ModelRef, spark: SparkScores) -> Parity:
    """The registered model `ref` loaded from its MLflow artifact by the online path's loader,
    scoring `spark.records`; compared with Spark's scores."""
    from lakeloop.serving.models import load_model  # no web stack for a job that never serves
    from lakeloop.serving.scorer import ScoreInputError, ScorerError

    with tempfile.TemporaryDirectory(prefix="lakeloop-parity-") as tmp:
        try:
            loaded = load_model(client, ref, Path(tmp))
            ours = loaded.scorer.score(spark.records)
        except (ScorerError, ScoreInputError) as e:
            return Parity(len(spark.records), float("inf"), None, None, error=str(e))
    parity = compare(
        spark,
        [s.prediction for s in ours],
        [s.probability for s in ours] if spark.probabilities is not None else None,
    )
    log.info(
        "parity of %s v%d on %d rows: max relative difference %.3g (prediction %.3g%s)",
        ref.name,
        ref.version,
        parity.rows,
        parity.max_diff,
        parity.max_prediction_diff,
        ""
        if parity.max_probability_diff is None
        else f", probability {parity.max_probability_diff:.3g}",
    )
    return parity
