"""The pinned stack is the one running: pyspark (not overwritten by pyspark-client) matches the
JVM's Spark, and the Delta and Kafka classes load from the jars passed as spark.jars."""

from importlib.metadata import version

import pyspark
import pytest

from lakeloop.jars import REQUIRED_CLASSES


def test_pyspark_matches_the_running_spark(spark):
    assert pyspark.__version__ == spark.version == "4.1.1"


def test_pyspark_client_is_pinned_to_pyspark():
    assert version("pyspark-client") == version("pyspark") == pyspark.__version__


@pytest.mark.parametrize("cls", REQUIRED_CLASSES)
def test_delta_and_kafka_classes_load(spark, cls):
    loaded = spark.sparkContext._jvm.java.lang.Class.forName(
        cls, True, spark.sparkContext._jvm.Thread.currentThread().getContextClassLoader()
    )
    assert loaded.getName() == cls


def test_jars_are_local_files(spark):
    jars = spark.conf.get("spark.jars").split(",")
    assert any("delta-spark_4.1_2.13-4.4.0.jar" in j for j in jars)
    assert all(j.startswith("/") and not j.startswith("http") for j in jars)
    assert spark.conf.get("spark.jars.packages", None) in (None, "")
