"""The online path: the champion scoring single requests without a JVM.

- `scorer`: a JVM-free scorer of the fitted Spark `PipelineModel` lakeloop trains (read from its
  saved folder: JSON metadata + Parquet data through pyarrow), with the batch path's exact scores.
- `online_store`: the latest feature row per entity key (`materialize` writes it from the Delta
  feature table with Spark; `serve` reads it by key). SQLite by default.
- `models`: the registry's champion/challenger as loaded scorers, polled and swapped atomically.
- `request_log`: every request and response appended to the Delta table `serving.log_table`
  through delta-rs, in small batches from a background writer.
- `app`: the Starlette app (`lakeloop serve`): /v1/predict, /v1/predict/by-key, /health,
  /v1/model, /metrics.
"""
