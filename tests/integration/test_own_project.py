"""A user's own project, outside this repository, from the built wheel alone.

The wheel is built from a copy of the checkout (`pip wheel --no-deps`; the copy keeps the
template symlinks, the wheel holds their content) and installed by pip, dependencies resolved,
into a fresh virtualenv (`pip install --no-compile <wheel>`). The virtualenv sees the running
environment's site-packages through a `.pth` file, so pip resolves the wheel's pinned
requirements against the packages installed there ("already satisfied", versions checked)
instead of unpacking 1.5 GB again (79 s here); the wheel itself (metadata, entry point,
package data) is installed into the fresh virtualenv and imported from there (checked), and
so is pyspark (its conf/ is where `lakeloop setup` writes spark-defaults.conf: never into this
repository's virtualenv). Then, with that virtualenv's `lakeloop` only and from inside the
project's folder: `lakeloop init` the houses example in a temporary folder, `lakeloop setup`
resolves the jars with Maven (the packaged poms) into an empty temporary jar cache
(LAKELOOP_JARS_CACHE) and a second `setup` does nothing, `lakeloop kafka create-topics` makes
the spec's topic (renamed: the test broker is shared), `lakeloop demo --in-process` runs the
example for one day (generate -> ingest files + Kafka -> validate -> build_features ->
build_training_set -> train -> predict -> monitor -> report in one process, no Airflow; the
per-job entry points are tested in test_job_entry_points.py, the Airflow path elsewhere), and
`lakeloop spec check` loads the spec from inside the project. Skipped, with the reason, only
when Maven is not installed or PyPI cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakeloop import cli, delta_io
from lakeloop.config import PROJECT_MARKER
from lakeloop.jars import PARTS
from tests.conftest import ROOT

D1 = dt.date(2026, 1, 1)
_NETWORK_ERRORS = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Network is unreachable",
)


_MAVEN_OFFLINE = ("UnknownHostException", "Could not transfer artifact", "Network is unreachable")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600):
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return proc


def _ok(proc, what: str) -> str:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout (the build never writes into the repository)."""
    src = tmp / "src-copy"
    src.mkdir()
    archive = tmp / "src.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("pyproject.toml", "README.md", "src", "conf", "expectations"):
            tar.add(
                ROOT / name,
                arcname=name,
                filter=lambda m: None if "__pycache__" in m.name or ".egg-info" in m.name else m,
            )
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="tar")  # symlinks stay symlinks, as in the checkout
    dist = tmp / "dist"
    proc = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(src)],
        cwd=tmp,
        env=os.environ.copy(),
    )
    _ok(proc, "pip wheel")
    (wheel,) = dist.glob("lakeloop-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_the_templates_and_poms_with_the_repository_content(wheel):
    res = "lakeloop/resources/"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        # the templates are the repository's own files (symlinked in the checkout): no drift
        for packaged, original in (
            ("project/conf/base/lakeloop.yaml", "conf/base/lakeloop.yaml"),
            ("project/conf/test/lakeloop.yaml", "conf/test/lakeloop.yaml"),
            ("examples/houses/conf/pipelines/houses.yaml", "conf/pipelines/houses.yaml"),
            (
                "examples/houses/expectations/houses/bronze_sales.json",
                "expectations/houses/bronze_sales.json",
            ),
            ("maven/spark-jars/pom.xml", "infra/spark-jars/pom.xml"),
            ("maven/kafka-broker/pom.xml", "infra/kafka/pom.xml"),
            ("maven/settings.xml", "infra/maven-settings.xml"),
            ("kafka/log4j2.properties", "infra/kafka/log4j2.properties"),
        ):
            assert z.read(res + packaged) == (ROOT / original).read_bytes(), packaged
    assert res + "examples/blank/conf/pipelines/my_pipeline.yaml" in names
    houses = {n.removeprefix(res + "examples/houses/") for n in names if "/houses/" in n}
    suites = {f"expectations/houses/{p.name}" for p in (ROOT / "expectations/houses").iterdir()}
    assert houses == {"README.md", "conf/pipelines/houses.yaml", *suites}  # only houses' own


def _pip(venv: Path, args: list[str], tmp: Path, env: dict[str, str], what: str) -> None:
    proc = _run([str(venv / "bin/python"), "-m", "pip", *args], cwd=tmp, env=env, timeout=1200)
    if proc.returncode != 0 and any(e in proc.stderr for e in _NETWORK_ERRORS):
        pytest.skip(f"PyPI cannot be reached to install {what}: {proc.stderr}")
    _ok(proc, f"pip install {what}")
    sys.stderr.write(f"\n[own project] pip install {what}: {proc.seconds:.0f} s\n")


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Iterator[Path]:
    """A new virtualenv with the built wheel installed by pip, its requirements resolved
    against this environment's packages (seen through a .pth file), pyspark its own."""
    if shutil.which("mvn") is None:
        pytest.skip("Maven (mvn) is not installed: `lakeloop setup` cannot resolve the jars")
    tmp = tmp_path_factory.mktemp("own-project")
    venv = tmp / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    _ok(_run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env), "venv")
    # after the venv's own site-packages on sys.path: what is installed there comes first
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (site / "_lakeloop_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pyspark = f"pyspark=={metadata.version('pyspark')}"
    quiet = ["install", "-q", "--no-compile"]
    _pip(venv, [*quiet, "--no-deps", "--force-reinstall", pyspark], tmp, env, pyspark)
    _pip(venv, [*quiet, str(wheel)], tmp, env, "<wheel> (requirements resolved)")
    # the package (and pyspark) the virtualenv imports are its own, not this checkout's
    code = "import lakeloop, pyspark; print(lakeloop.__file__); print(pyspark.__file__)"
    where = _ok(_run([str(venv / "bin/python"), "-c", code], cwd=tmp, env=env), "import").split()
    assert len(where) == 2 and all(Path(w).is_relative_to(site) for w in where), where
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # pyspark: 0.5 GB; pytest keeps the last tmp dirs


@pytest.mark.slow
@pytest.mark.kafka
def test_a_project_of_ones_own_runs_from_the_wheel(fresh_venv, broker, tmp_path, spark):
    venv_bin = fresh_venv / "bin"
    assert (venv_bin / "lakeloop").exists()
    cache = tmp_path / "jar-cache"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "LAKELOOP_HOME", "LAKELOOP_ENV")
    }
    env.update(PATH=f"{venv_bin}:{env['PATH']}", LAKELOOP_JARS_CACHE=str(cache))
    lakeloop = str(venv_bin / "lakeloop")
    timings: dict[str, float] = {}

    def ll(*args: str, cwd: Path) -> str:
        proc = _run([lakeloop, *args], cwd=cwd, env=env)
        timings[" ".join(args[:2])] = timings.get(" ".join(args[:2]), 0) + proc.seconds
        return _ok(proc, f"lakeloop {' '.join(args)}")

    # init: the houses example into a folder outside the repository
    project = tmp_path / "my-houses"
    out = ll("init", str(project), "--example", "houses", cwd=tmp_path)
    assert (project / PROJECT_MARKER).is_file() and "conf/pipelines/houses.yaml" in out
    assert not (project / "pyproject.toml").exists() and not (project / ".jars").exists()
    spec = project / "conf/pipelines/houses.yaml"
    topic = f"test.own.{uuid.uuid4().hex[:10]}"  # the test broker is shared: a topic of its own
    spec.write_text(spec.read_text().replace("topic: houses.sales", f"topic: {topic}"))
    assert topic in spec.read_text()

    # setup: jars resolved with the packaged poms into the (empty) user cache, once
    resolving = _run([lakeloop, "setup"], cwd=project, env=env)
    timings["setup"] = resolving.seconds
    if resolving.returncode != 0 and any(e in resolving.stderr for e in _MAVEN_OFFLINE):
        pytest.skip(f"Maven Central cannot be reached: {resolving.stderr[-2000:]}")
    first = _ok(resolving, "lakeloop setup")
    assert "resolved now" in first and str(cache) in first, first
    assert sorted(p.name for p in cache.iterdir()) == ["4.1.1-4.4.0"]
    again = ll("setup", cwd=project)
    # every jar set (spark, kafka, hdfs) and the Data Docs' web assets: all there already
    assert again.count("nothing to do") == len(PARTS) + 1 and "(up to date)" in again, again
    defaults = fresh_venv / "lib/python3.11/site-packages/pyspark/conf/spark-defaults.conf"
    assert str(cache / "4.1.1-4.4.0/spark") in defaults.read_text()

    # the example, run from a folder inside the project (found by its marker), on the test
    # broker: `demo --in-process` is the example's one-process run (generate -> ingest files +
    # Kafka -> validate -> build_features -> build_training_set -> train -> predict -> monitor
    # -> report, the same job code as `lakeloop run`; without the flag demo goes through
    # Airflow, tested elsewhere), for one day: the model learns from the backlog of sales
    # before it. The per-job entry points are tested in test_job_entry_points. The broker is
    # the shared test broker: its data_dir lets `demo`'s `kafka up` find it running.
    inside = project / "conf"
    test_broker = ("--set", f"kafka.broker.data_dir={broker.path(broker.kafka.broker.data_dir)}")
    common = ("--pipeline", "houses", "--env", "test")
    topics = ll("kafka", "create-topics", *common, cwd=inside)
    assert f'"topic": "{topic}"' in topics and '"created"' in topics, topics
    demo = ll(
        *("demo", "--in-process"),
        *("--days", "1", "--rows-per-day", "250", "--malformed", "0", "--start", str(D1)),
        *("--env", "test", *test_broker),
        cwd=inside,
    )
    assert f"lakehouse {project / '.lakehouse'}" in demo and "trained houses_price v1" in demo, demo
    assert "champion houses_price v1" in demo, demo
    # monitor + report ran from the wheel: its templates and plotly.min.js are package data
    page = Path(demo.split("run report (HTML, opens offline): ")[1].split()[0])
    assert page.is_file() and (page.parent / "plotly.min.js").is_file(), demo
    # a job on its own, as a scheduler runs it: fast (no Spark), from the project's folder
    checked = ll("spec", "check", "houses", "--env", "test", cwd=inside)
    assert "OK" in checked, checked
    sys.stderr.write(f"\n[own project] steps (s): { {k: round(v) for k, v in timings.items()} }\n")

    # everything landed in the project: its lakehouse, its MLflow
    lakehouse = project / ".lakehouse"
    assert (project / ".mlflow/mlflow.db").is_file()
    preds = delta_io.read(spark, str(lakehouse / "predictions/houses_listings"))
    per_day = {
        r["prediction_date"]: r["n"]
        for r in preds.groupBy("prediction_date").agg(F.count("*").alias("n")).collect()
    }
    assert sorted(per_day) == [D1] and per_day[D1] > 0
    assert preds.where("prediction is null").count() == 0
    assert {r["model_name"] for r in preds.select("model_name").distinct().collect()} == {
        "houses_price"
    }


def test_init_refuses_a_folder_that_is_not_empty(tmp_path, caplog):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert cli.main(["init", str(target), "--example", "blank"]) == 2
    assert "is not empty" in caplog.text and "--force" in caplog.text
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]  # nothing written
    assert cli.main(["init", str(target), "--example", "blank", "--force"]) == 0
    assert (target / "notes.txt").read_text() == "mine"  # other files are left alone
    assert (target / "conf/pipelines/my_pipeline.yaml").is_file()
    assert (target / PROJECT_MARKER).is_file()


def test_missing_jars_name_lakeloop_setup(tmp_path, monkeypatch, caplog):
    """A project (LAKELOOP_HOME, no jars beside it) with an empty user cache: the job stops
    before Spark starts, exit 2, naming the cache folder and `lakeloop setup`."""
    project = tmp_path / "p"
    assert cli.main(["init", str(project), "--example", "houses"]) == 0
    monkeypatch.setenv("LAKELOOP_HOME", str(project))
    monkeypatch.setenv("LAKELOOP_JARS_CACHE", str(tmp_path / "empty-cache"))
    rc = cli.main(["run", "ingest_files", "--pipeline", "houses", "--date", "2026-01-01"])
    assert rc == 2
    assert "Spark jars missing in " + str(tmp_path / "empty-cache") in caplog.text
    assert "Run `lakeloop setup`" in caplog.text
