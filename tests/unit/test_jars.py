from pathlib import Path

import pytest

from lakeloop.jars import MissingJarsError, artifact_name, select_missing, spark_jars


def test_artifact_name_strips_only_the_version():
    assert artifact_name("delta-spark_4.1_2.13-4.4.0.jar") == "delta-spark_4.1_2.13"
    assert artifact_name("kafka-clients-3.9.1.jar") == "kafka-clients"
    assert artifact_name("scala-library-2.13.16.jar") == "scala-library"


def test_select_keeps_only_what_pyspark_lacks(tmp_path: Path):
    all_dir, shipped, out = tmp_path / "all", tmp_path / "shipped", tmp_path / "out"
    all_dir.mkdir()
    shipped.mkdir()
    for j in (
        "delta-spark_4.1_2.13-4.4.0.jar",
        "scala-library-2.13.16.jar",
        "jackson-core-2.13.0.jar",
    ):
        (all_dir / j).write_text("x")
    for j in ("scala-library-2.13.17.jar", "jackson-core-2.15.2.jar"):
        (shipped / j).write_text("x")
    kept = select_missing(all_dir, out, shipped)
    assert [p.name for p in kept] == ["delta-spark_4.1_2.13-4.4.0.jar"]
    assert sorted(p.name for p in out.iterdir()) == ["delta-spark_4.1_2.13-4.4.0.jar"]


def test_missing_jar_folder_names_the_fix(tmp_path: Path):
    with pytest.raises(MissingJarsError, match="make jars"):
        spark_jars(tmp_path / "nope")


def test_incomplete_jar_folder_names_what_is_missing(tmp_path: Path):
    (tmp_path / "delta-spark_4.1_2.13-4.4.0.jar").write_text("x")
    with pytest.raises(MissingJarsError, match="spark-sql-kafka-0-10_2.13"):
        spark_jars(tmp_path)
