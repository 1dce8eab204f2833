"""Lineage replay: the exact training set a registered model version learned from, read back
with Delta time travel at the version logged with the model (`tracking.lineage`) and checked
against the logged row count."""

from __future__ import annotations

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from lakeloop import delta_io
from lakeloop.jobs.common import JobError
from lakeloop.ml import tracking
from lakeloop.spec import Pipeline


def training_set_as_of(
    spark: SparkSession, pipeline: Pipeline, model_version: int
) -> tuple[DataFrame, tracking.Lineage, tuple[int, str]]:
    """The exact training set a registered model version learned from: its Delta table at the
    version logged with the model (time travel), checked against the logged row count, with
    (rows read, checksum) from one pass (`delta_io.checksum`)."""
    if pipeline.spec.model is None:
        raise JobError(f"pipeline {pipeline.name} has no `model` section")
    client = tracking.configure(pipeline.cfg)
    try:
        ref = tracking.by_version(client, pipeline.spec.model.name, model_version)
        lin = tracking.lineage(client, ref)
    except tracking.RegistryError as e:
        raise JobError(str(e)) from None
    try:
        df = delta_io.read_version(spark, lin.path, lin.delta_version)
        rows, checksum = delta_io.checksum(df)
    except (PySparkException, Py4JJavaError) as e:  # a vacuumed file: FILE_NOT_EXIST / JVM
        raise JobError(
            f"{lin.table} version {lin.delta_version} at {lin.path} cannot be read (vacuumed, "
            f"past log retention, or moved?): {str(e).splitlines()[0][:500]}"
        ) from None
    if rows != lin.rows:
        raise JobError(
            f"{lin.table} version {lin.delta_version} has {rows} rows but model "
            f"{ref.name} v{ref.version} was trained on {lin.rows}"
        )
    return df, lin, (rows, checksum)
