import json
import os
import stat
from pathlib import Path

import pytest

from lakeloop import cli, jars, sparkdefaults
from lakeloop.config import load_config
from lakeloop.jars import (
    MissingJarsError,
    SetupError,
    artifact_name,
    cache_dir,
    cache_root,
    jars_dir_for,
    select_missing,
    spark_jars,
)
from tests.conftest import ROOT

KEY = "4.1.1-4.4.0"  # pyspark 4.1.1 + delta-spark 4.4.0, the pins of pyproject.toml
NEEDED = ("delta-spark_4.1_2.13-4.4.0.jar", "spark-sql-kafka-0-10_2.13-4.1.1.jar")


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


# --- where the jars are ---------------------------------------------------------------------


def test_cache_root_override_then_xdg_then_home(tmp_path: Path):
    assert cache_root({"LAKELOOP_JARS_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    both = {"LAKELOOP_JARS_CACHE": str(tmp_path / "c"), "XDG_CACHE_HOME": str(tmp_path / "x")}
    assert cache_root(both) == tmp_path / "c"
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "x")}
    assert cache_root(xdg) == tmp_path / "x/lakeloop/jars"
    home = Path.home().resolve() / ".cache/lakeloop/jars"
    assert cache_root({}) == home
    assert cache_root({"XDG_CACHE_HOME": "relative/x"}) == home  # the XDG spec: ignore relative


def test_cache_dir_is_named_after_the_installed_versions(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path))
    assert cache_dir("spark") == tmp_path / KEY / "spark"
    assert cache_dir("kafka") == tmp_path / KEY / "kafka"
    monkeypatch.setattr(jars, "spark_version", lambda: "4.2.0")
    assert cache_dir("spark") == tmp_path / "4.2.0-4.4.0/spark"  # another pyspark: other jars
    assert cache_dir("hdfs") == tmp_path / "4.2.0-4.4.0/hdfs"
    with pytest.raises(ValueError, match="unknown jar set 'yarn'"):
        cache_dir("yarn")


def test_jars_dir_unset_or_the_old_default_missing_is_the_cache(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path / "cache"))
    project = tmp_path / "project"
    project.mkdir()
    cached = tmp_path / "cache" / KEY / "spark"
    assert jars_dir_for(None, project, "spark") == cached
    assert jars_dir_for(Path(".jars/spark"), project, "spark") == cached  # not in the project
    (project / ".jars/spark").mkdir(parents=True)
    assert jars_dir_for(Path(".jars/spark"), project, "spark") == project / ".jars/spark"
    # any other setting is taken as given, present or not (its error names it)
    assert jars_dir_for(Path("/opt/jars"), project, "spark") == Path("/opt/jars")
    assert jars_dir_for(Path("lib/kafka"), project, "kafka") == project / "lib/kafka"


def test_a_lakeloop_home_project_needs_no_jars_beside_it(monkeypatch, tmp_path: Path):
    """LAKELOOP_HOME moves config, specs and lakehouse; the jars stay in the user cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(cache))
    project = tmp_path / "elsewhere"
    assert cli.main(["init", str(project), "--example", "blank"]) == 0
    monkeypatch.setenv("LAKELOOP_HOME", str(project))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("test")
    assert cfg.project_root == project.resolve()
    assert cfg.lakehouse_root == str(project.resolve() / ".lakehouse")
    assert jars.spark_jars_dir(cfg) == cache / KEY / "spark"
    assert jars.kafka_jars_dir(cfg) == cache / KEY / "kafka"
    explicit = load_config("test", {"spark": {"jars_dir": "vendor/jars"}})
    assert jars.spark_jars_dir(explicit) == project.resolve() / "vendor/jars"


def test_missing_cache_names_lakeloop_setup(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path))
    with pytest.raises(MissingJarsError, match=r"Run `lakeloop setup`") as e:
        spark_jars(cache_dir("spark"))
    assert str(tmp_path / KEY / "spark") in str(e.value)
    with pytest.raises(MissingJarsError, match=r"Run `lakeloop setup`"):
        jars.kafka_broker_jars(cache_dir("kafka"))


def test_a_configured_folder_without_jars_says_it_is_configured(tmp_path: Path):
    with pytest.raises(MissingJarsError, match=r"set in the config \(spark.jars_dir\)"):
        spark_jars(tmp_path / "nope")


def test_incomplete_jar_folder_names_what_is_missing(tmp_path: Path):
    (tmp_path / "delta-spark_4.1_2.13-4.4.0.jar").write_text("x")
    with pytest.raises(MissingJarsError, match="spark-sql-kafka-0-10_2.13"):
        spark_jars(tmp_path)


# --- lakeloop setup (Maven stubbed: the real one runs in tests/integration/test_own_project) --


@pytest.fixture
def fake_maven(monkeypatch, tmp_path: Path) -> list[str]:
    """`_copy_dependencies` writes the jars a Maven run would; returns the parts it ran for."""
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []

    def copy(part: str, out: Path, work: Path) -> None:
        calls.append(part)
        out.mkdir()
        names = {
            "spark": (*NEEDED, "kafka-clients-3.9.1.jar"),
            "kafka": ("kafka_2.13-4.1.1.jar",),
            "hdfs": tuple(f"{a}-3.4.2.jar" for a in jars.HDFS_ARTIFACTS),
        }[part]
        for name in (*names, "scala-library-2.13.16.jar"):  # pyspark ships scala-library
            (out / name).write_text(part)

    monkeypatch.setattr(jars, "_copy_dependencies", copy)
    return calls


def test_setup_resolves_once_then_does_nothing(fake_maven, tmp_path: Path):
    first = jars.setup()
    assert [(r.part, r.resolved, r.jars) for r in first] == [
        ("spark", True, 3),
        ("kafka", True, 2),
        ("hdfs", True, 4),
    ]
    spark = tmp_path / "cache" / KEY / "spark"
    assert sorted(p.name for p in spark.glob("*.jar")) == sorted(
        (*NEEDED, "kafka-clients-3.9.1.jar")
    )
    assert json.loads((spark / ".stamp").read_text())["versions"] == KEY
    assert [p.name for p in (tmp_path / "cache" / KEY).iterdir() if p.name.startswith(".")] == []
    second = jars.setup()
    assert [r.resolved for r in second] == [False] * 3 and fake_maven == ["spark", "kafka", "hdfs"]
    assert jars.setup(force=True)[0].resolved and fake_maven.count("spark") == 2


def test_setup_resolves_again_when_the_pom_changes(fake_maven, monkeypatch, tmp_path: Path):
    jars.setup(parts=("kafka",))
    pom = tmp_path / "pom.xml"
    pom.write_text(jars.POMS["kafka"].read_text().replace("4.1.1", "4.1.2"))
    monkeypatch.setitem(jars.POMS, "kafka", pom)
    assert not jars.is_complete("kafka")
    assert jars.setup(parts=("kafka",))[0].resolved and fake_maven == ["kafka", "kafka"]


def test_setup_without_maven_says_to_install_it(monkeypatch, tmp_path: Path, caplog):
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SetupError, match=r"Maven \(`mvn`\) is not on PATH.*Install Maven"):
        jars.setup()
    assert cli.main(["setup"]) == 1
    assert "setup failed: Maven (`mvn`) is not on PATH" in caplog.text
    assert not (tmp_path / "cache" / KEY / "spark").exists()


def test_a_failing_maven_run_is_one_line_with_its_error(monkeypatch, tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(
        "#!/bin/sh\necho '[INFO] Scanning'\n"
        "echo '[ERROR] Failed to execute goal: Could not resolve io.delta:delta-spark_4.1_2.13:9.9'\n"
        "exit 1\n"
    )
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match=r"spark jars \(exit 1\): \[ERROR\] .*delta-spark") as e:
        jars.setup()
    assert "Scanning" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "cache" / KEY / "spark").exists()  # no half folder left


def test_spark_defaults_name_the_cache_jars_and_are_rewritten_only_on_change(
    fake_maven, monkeypatch, tmp_path: Path
):
    jars.setup(parts=("spark",))
    conf = tmp_path / "sparkconf" / "spark-defaults.conf"
    monkeypatch.setattr(sparkdefaults, "spark_defaults_path", lambda: conf)
    path, changed = sparkdefaults.write()
    assert path == conf and changed
    text = conf.read_text()
    line = next(x for x in text.splitlines() if x.startswith("spark.jars "))
    assert str(tmp_path / "cache" / KEY / "spark" / NEEDED[0]) in line
    assert "spark.sql.extensions io.delta.sql.DeltaSparkSessionExtension" in text
    assert (conf.parent / "spark-env.sh").stat().st_mode & stat.S_IEXEC
    assert sparkdefaults.write() == (conf, False)


def test_infra_points_at_the_packaged_poms():
    for link, target in (
        ("infra/spark-jars/pom.xml", jars.POMS["spark"]),
        ("infra/kafka/pom.xml", jars.POMS["kafka"]),
        ("infra/hdfs/pom.xml", jars.POMS["hdfs"]),
        ("infra/maven-settings.xml", jars.MAVEN_SETTINGS),
        ("infra/kafka/log4j2.properties", jars.RESOURCES / "kafka/log4j2.properties"),
    ):
        assert (ROOT / link).is_symlink() and (ROOT / link).resolve() == target.resolve(), link


def test_a_concurrent_setup_that_finished_first_is_kept(fake_maven, monkeypatch, tmp_path: Path):
    jars.setup(parts=("kafka",))
    target = cache_dir("kafka")
    (target / "kafka_2.13-4.1.1.jar").write_text("the other setup's")
    stamp = (target / ".stamp").read_text()
    other = jars._copy_dependencies

    def slow_copy(part: str, out: Path, work: Path) -> None:
        other(part, out, work)
        (target / ".stamp").write_text(stamp)  # the other run's complete folder is in place

    monkeypatch.setattr(jars, "_copy_dependencies", slow_copy)
    (target / ".stamp").unlink()  # stale: this run resolves
    result = jars.setup(parts=("kafka",))[0]
    assert not result.resolved and fake_maven == ["kafka", "kafka"]
    assert (target / "kafka_2.13-4.1.1.jar").read_text() == "the other setup's"


def test_hdfs_jars_follow_pysparks_hadoop_and_name_what_is_missing(tmp_path: Path):
    assert jars.hadoop_version() == next(
        p.name[len("hadoop-client-api-") : -len(".jar")]
        for p in jars.pyspark_jars_dir().glob("hadoop-client-api-*.jar")
    )
    (tmp_path / "hadoop-hdfs-3.4.2.jar").write_text("x")
    with pytest.raises(MissingJarsError, match=r"hadoop-common, hadoop-hdfs-client not found"):
        jars.hdfs_jars(tmp_path)
    with pytest.raises(SetupError, match="no hadoop-client-api jar"):
        jars.hadoop_version(tmp_path)
