"""Where MLflow's Spark flavor stages a model: on the lakehouse's storage, which must be
Spark's default file system when it is remote (MLflow copies through `fs.defaultFS`)."""

import pytest

from lakeloop.config import ConfigError, load_config
from lakeloop.ml import tracking
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT


def _pipeline(root: str):
    return load_pipeline(load_config("test", {"lakehouse_root": root}, project_root=ROOT), "houses")


def test_local_lakehouse_stages_models_under_it(spark, tmp_path):
    assert tracking.dfs_tmpdir(spark, _pipeline(str(tmp_path))) == f"{tmp_path}/_tmp/mlflow"


def test_remote_lakehouse_must_be_the_default_file_system(spark):
    p = _pipeline("hdfs://nn.example:9820/lake")
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    before = conf.get("fs.defaultFS")
    assert before.startswith("file:")
    with pytest.raises(ConfigError, match=r"fs\.defaultFS=file:.*hdfs://nn\.example:9820"):
        tracking.dfs_tmpdir(spark, p)
    conf.set("fs.defaultFS", "hdfs://nn.example:9820")
    try:
        assert tracking.dfs_tmpdir(spark, p) == "hdfs://nn.example:9820/lake/_tmp/mlflow"
        conf.set("fs.defaultFS", "hdfs://other:9820")
        with pytest.raises(ConfigError, match="not on Spark's default file system"):
            tracking.dfs_tmpdir(spark, p)
    finally:
        conf.set("fs.defaultFS", before)
