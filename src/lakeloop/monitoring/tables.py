"""The metrics tables the monitor job writes (`metrics.<pipeline>_*`, keys `metrics_*` in the
spec's `tables`), as StructType constants. Every row carries the lakeloop run id that wrote it
and the model version it is about; each table is written with `replaceWhere run_date = D`, so a
re-run of the monitor for a date replaces exactly that date's rows."""

from __future__ import annotations

from pyspark.sql import types as T

RUN_DATE = "run_date"

# keys in the spec's `tables` (filled with defaults `metrics.<pipeline>_<kind>` when absent)
REFERENCE = "metrics_reference"
DRIFT = "metrics_drift"
QUALITY = "metrics_quality"
DATA_QUALITY = "metrics_data_quality"
DECISIONS = "metrics_decisions"
KEYS = (REFERENCE, DRIFT, QUALITY, DATA_QUALITY, DECISIONS)  # = spec.METRICS_TABLES


def _f(name: str, dtype: T.DataType, nullable: bool = True) -> T.StructField:
    return T.StructField(name, dtype, nullable)


_S, _D, _L, _I, _B = T.StringType(), T.DoubleType(), T.LongType(), T.IntegerType(), T.BooleanType()

# One row per (run_date, feature): the day's scored entities against the champion's reference.
# kind: numeric | categorical | prediction. bins: the bucket labels shared by the two count
# arrays (numeric: reference decile buckets with open outer bins, then "null" and "NaN";
# categorical: the reference's categories, then "(unseen)" and "null").
DRIFT_SCHEMA = T.StructType(
    [
        _f(RUN_DATE, T.DateType(), False),
        _f("run_id", _S, False),
        _f("model_name", _S, False),
        _f("model_version", _I, False),
        _f("feature", _S, False),
        _f("kind", _S, False),
        _f("rows_reference", _L),
        _f("rows_current", _L),
        _f("psi", _D),
        _f("ks", _D),  # numeric: KS D from the quantile grids
        _f("wasserstein", _D),  # numeric: Wasserstein distance / reference std
        _f("jensen_shannon", _D),  # categorical (natural log)
        _f("chi2_p", _D),  # categorical: chi-square contingency p-value
        _f("null_share_reference", _D),
        _f("null_share_current", _D),
        _f("threshold", _D),
        _f("drifted", _B),  # psi > threshold
        _f("bins", T.ArrayType(_S)),
        _f("reference_counts", T.ArrayType(_L)),
        _f("current_counts", T.ArrayType(_L)),
    ]
)

# One row per (run_date, model version, role, prediction_date, metric): the predictions of
# prediction_date joined to the labels matured by run_date (label time <= the end of run_date,
# in the label table's snapshot `label_version`).
QUALITY_SCHEMA = T.StructType(
    [
        _f(RUN_DATE, T.DateType(), False),
        _f("run_id", _S, False),
        _f("model_name", _S, False),
        _f("model_version", _I, False),
        _f("role", _S, False),  # champion | challenger (the shadow score)
        _f("prediction_date", T.DateType(), False),
        _f("metric", _S, False),
        _f("value", _D),
        _f("test_value", _D),  # the model's own test-window score (MLflow test_<metric>)
        _f("predictions", _L),  # scored rows of prediction_date
        _f("matured_labels", _L),  # of them, with a matured label
        _f("label_table", _S),
        _f("label_version", _L),
    ]
)

# One row per (run_date, silver table, data_date): the validate runs of the last days.
DATA_QUALITY_SCHEMA = T.StructType(
    [
        _f(RUN_DATE, T.DateType(), False),
        _f("run_id", _S, False),
        _f("model_name", _S),
        _f("model_version", _I),
        _f("table", _S, False),  # the silver table
        _f("data_date", T.DateType(), False),
        _f("rows_in", _L),
        _f("silver_rows", _L),
        _f("quarantined", _L),
        _f("pass_rate", _D),
        _f("top_reasons", T.MapType(_S, _L)),  # quarantine reason -> rows (top 5)
        _f("validate_run_id", _S),
        _f("data_docs", _S),  # the GX Data Docs index of that validate run
    ]
)

# One row per run_date: the retrain policy's decision and the numbers behind it.
DECISIONS_SCHEMA = T.StructType(
    [
        _f(RUN_DATE, T.DateType(), False),
        _f("run_id", _S, False),
        _f("model_name", _S, False),
        _f("model_version", _I, False),
        _f("retrain_recommended", _B, False),
        _f("rule", _S, False),  # drift | quality | new_labels | none (cooldown: see in_cooldown)
        _f("in_cooldown", _B, False),
        _f("reason", _S, False),
        _f("evidence", _S),  # JSON: the numbers each rule looked at
        _f("last_trained", T.DateType()),
    ]
)

# With `serving:`: one row per (run_date, section, ...) about the requests the online server
# answered on run_date (its request log, `serving.log_table`):
# - traffic: per model alias and version that answered: requests, records scored, the mean
#   prediction, latency p50/p99; one row with model_alias "(rejected)" counts the records
#   refused as bad input;
# - drift: per watched feature, the served records' values against the champion's reference
#   (PSI over the reference's buckets);
# - quality: per alias and version, the spec's metrics on the served records whose label has
#   matured by run_date (the entity's first label at or after the request).
ONLINE = "metrics_online"
ONLINE_SCHEMA = T.StructType(
    [
        _f(RUN_DATE, T.DateType(), False),
        _f("run_id", _S, False),
        _f("model_name", _S, False),
        _f("section", _S, False),  # traffic | drift | quality
        _f("model_alias", _S),  # champion | challenger | (rejected); null for drift
        _f("model_version", _I),
        _f("feature", _S),  # drift
        _f("metric", _S),  # quality
        _f("requests", _L),
        _f("rows", _L),
        _f("mean_prediction", _D),
        _f("latency_p50_ms", _D),
        _f("latency_p99_ms", _D),
        _f("psi", _D),
        _f("drifted", _B),
        _f("value", _D),
        _f("matured_labels", _L),
    ]
)
