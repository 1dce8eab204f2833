"""Faults: the same date run twice at once (validate, predict) and a run SIGKILLed inside its
Delta write (build_features' MERGE, predict's replaceWhere), on real job processes
(`python -m lakeloop.cli run ...` semantics) against copies of one prepared lakehouse.

Timing faults are made deterministic with a few lines run in the job process before the CLI
(HOOK below): the DataFrame handed to the Delta write is wrapped in an identity step that runs
inside the write's Spark job — after Delta took the transaction's snapshot, before its commit —
and there waits for the other process (a race) or blocks one partition forever (a kill). The job
code, Delta and the commit protocol are untouched; the rows written are the same.
"""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop import delta_io, runlog
from lakeloop.config import load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import (
    build_features,
    build_training_set,
    ingest_files,
    ingest_kafka,
    predict,
    train,
    validate,
)
from lakeloop.spec import Pipeline, load_pipeline
from tests.conftest import ROOT, spec_variant

D1, D3, D4 = dt.date(2026, 1, 1), dt.date(2026, 1, 3), dt.date(2026, 1, 4)
AS_OF = D3 + dt.timedelta(days=60)
DAY = "_ingest_date"

# Runs in the job's driver before `lakeloop.cli.main()`. The identity step is an RDD
# mapPartitions (plain pickled rows: the Python workers need nothing beyond pyspark).
HOOK = """
import os, sys, time
from pathlib import Path

MODE, DIR, NAME = (os.environ.get(k, "") for k in ("FAULT", "FAULT_DIR", "FAULT_NAME"))


def held(df, mode, fault_dir, name):
    def step(index, rows):
        import os, time
        from pathlib import Path

        d = Path(fault_dir)
        if mode == "race":  # both processes inside their write before either may commit
            (d / f"{name}.writing").touch()
            deadline = time.monotonic() + 180
            while len(list(d.glob("*.writing"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        elif index == 1:  # kill: partition 0 is written, partition 1 never finishes
            (d / "blocked").touch()
            while True:
                time.sleep(1)
        yield from rows

    src = df.repartition(2) if mode != "race" else df
    return df.sparkSession.createDataFrame(src.rdd.mapPartitionsWithIndex(step), df.schema)


if MODE:
    from lakeloop import delta_io
    from lakeloop.jobs import build_features

    if os.environ.get("FAULT_ATTEMPTS"):
        delta_io.WRITE_ATTEMPTS = int(os.environ["FAULT_ATTEMPTS"])
    first = []

    def once(fn, arg):
        def wrapped(*a, **kw):
            a = list(a)
            if not first:
                first.append(1)
                a[arg] = held(a[arg], MODE, DIR, NAME)
            return fn(*a, **kw)
        return wrapped

    if MODE == "kill-merge":  # build_features(spark, pipeline, batch, run_id)
        build_features.merge_features = once(build_features.merge_features, 2)
    else:  # replace_partition(df, path, ...)
        delta_io.replace_partition = once(delta_io.replace_partition, 0)

from lakeloop.cli import main

sys.exit(main())
"""


def _config(root: Path, mlflow_dir: Path):
    return load_config(
        "test",
        {
            "lakehouse_root": str(root),
            "mlflow": {
                "tracking_uri": f"sqlite:///{mlflow_dir}/mlflow.db",
                "artifact_root": str(mlflow_dir / "art"),
            },
        },
        project_root=ROOT,
    )


@dataclass
class Lake:
    """The reference lakehouse (every stage of D4 run uninterrupted, in-process) and frozen
    copies of it taken just before D4's validate, build_features and predict."""

    root: Path
    spec: Path
    mlflow: Path
    stages: dict[str, Path]
    tmp: Path
    listings_spec: Path  # the same spec validating the listings only (half a validate run)

    def pipeline(self, root: Path) -> Pipeline:
        return load_pipeline(_config(root, self.mlflow), str(self.spec))

    def copy(self, stage: str) -> tuple[Pipeline, Path]:
        dst = self.tmp / f"{stage}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(self.stages[stage], dst)
        return self.pipeline(dst), dst


@pytest.fixture(scope="module")
def lake(spark, broker, tmp_path_factory) -> Lake:
    """Three days through to a champion (predictions for D3), then D4's listings ingested."""
    tmp = tmp_path_factory.mktemp("faults")
    mlflow_dir, root = tmp / "mlflow", tmp / "reference"
    topic = f"test.sales.{uuid.uuid4().hex[:10]}"

    def edit(d):
        d["sources"]["kafka"][0]["topic"] = topic
        # any model will do: one fit per fold, promoted whatever its score
        d["model"]["estimator"]["grid"] = {"regParam": [0.01]}
        d["model"]["tuning"]["folds"] = 2
        d["model"]["promotion"]["thresholds"] = {}

    p, spec = spec_variant(_config(root, mlflow_dir), tmp, edit)

    def listings_only(d):
        edit(d)
        d["expectations"] = [e for e in d["expectations"] if e["source"] == "bronze_listings"]

    _, listings_spec = spec_variant(p.cfg, tmp, listings_only)
    gen.generate(p, start=D1, days=3, rows_per_day=120, malformed=0.01)
    gen.generate(p, start=D4, days=1, rows_per_day=120, malformed=0.01, produce=False)
    days = [D1 + dt.timedelta(days=i) for i in range(3)]
    for d in (*days, D4):
        ingest_files.run(spark, p, d)
    ingest_kafka.run(spark, p, D3)
    for d in days:
        validate.run(spark, p, d)
    build_features.backfill(spark, p, D1, D3)
    build_training_set.run(spark, p, AS_OF)
    assert train.run(spark, p, AS_OF).details["decision"] == "promoted"
    predict.run(spark, p, D3)
    lake = Lake(root, spec, mlflow_dir, {}, tmp, listings_spec)
    for stage, job in (("validate", validate), ("build_features", build_features)):
        lake.stages[stage] = shutil.copytree(root, tmp / f"before-{stage}")
        job.run(spark, p, D4)
    lake.stages["predict"] = shutil.copytree(root, tmp / "before-predict")
    predict.run(spark, p, D4)
    return lake


@dataclass
class Job:
    proc: subprocess.Popen
    stderr: Path

    def wait(self, timeout: float = 900) -> tuple[int, str]:
        rc = self.proc.wait(timeout)
        return rc, self.stderr.read_text()


def start_job(
    lake: Lake,
    job: str,
    root: Path,
    fault_dir: Path,
    mode: str,
    name: str,
    spec: Path | None = None,
    **env,
):
    """`lakeloop run <job>` on `root` in a process group of its own (JVM and Python workers);
    `spec` instead of the lake's own (same tables)."""
    fault_dir.mkdir(exist_ok=True)
    err = fault_dir / f"{name}.stderr"
    spec = spec or lake.spec
    cmd = [
        sys.executable,
        "-c",
        HOOK,
        *("run", job, "--pipeline", str(spec), "--date", D4.isoformat(), "--env", "test"),
        *("--set", f"lakehouse_root={root}"),
        *("--set", f"mlflow.tracking_uri=sqlite:///{lake.mlflow}/mlflow.db"),
        *("--set", f"mlflow.artifact_root={lake.mlflow / 'art'}"),
    ]
    environ = dict(os.environ, FAULT=mode, FAULT_DIR=str(fault_dir), FAULT_NAME=name, **env)
    with open(err, "w") as e:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=e, start_new_session=True
        )
    STARTED.append(proc)
    return Job(proc, err)


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_job_left_behind():
    """A failed assertion or timeout must not leave a job's JVM running: kill its group."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)


def await_path(cond, what: str, job: Job, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if job.proc.poll() is not None:
            raise AssertionError(
                f"job ended ({job.proc.returncode}) before {what}: {job.stderr.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill(job: Job) -> None:
    os.killpg(job.proc.pid, signal.SIGKILL)
    assert job.proc.wait(60) == -signal.SIGKILL


def table(spark, p: Pipeline, key: str):
    return delta_io.read(spark, p.table_path(key))


def data_files(path: str) -> set[str]:
    """Every data file under the table's folder, committed or not (relative paths)."""
    return {str(f.relative_to(path)) for f in Path(path).rglob("*.parquet")}


def live_files(spark, path: str) -> set[str]:
    """The file names of the table's current version."""
    return {Path(f).name for f in delta_io.read(spark, path).inputFiles()}


# --- the same date twice at once -------------------------------------------------------------


def test_validate_twice_at_once_one_commits_the_other_retries_one_copy_of_the_date(
    spark, lake, tmp_path
):
    """The listings only (the race is in the first table's write; the sales are not compared):
    each process does half of a full validate run."""
    ref = lake.pipeline(lake.root)
    p, root = lake.copy("validate")
    jobs = [
        start_job(lake, "validate", root, tmp_path, "race", n, spec=lake.listings_spec)
        for n in ("a", "b")
    ]
    outcomes = [j.wait() for j in jobs]
    assert [rc for rc, _ in outcomes] == [0, 0], [err[-3000:] for _, err in outcomes]
    retried = [err for _, err in outcomes if "a concurrent run committed first" in err]
    # both silver writes were inside each other's transaction window (HOOK): the second to
    # commit was rejected (files of the date added since its snapshot) and wrote the date again
    assert retried, [err[-3000:] for _, err in outcomes]
    assert any(
        "(ConcurrentAppendException); writing the date again (attempt 2 of 3)" in e for e in retried
    )

    for key in ("silver_listings", "quarantine_listings"):
        got = table(spark, p, key).where(F.col(DAY) == D4)
        want = table(spark, ref, key).where(F.col(DAY) == D4)
        if key.startswith("quarantine"):  # _run_id: whichever run wrote last; all else equal
            got, want = got.drop("_run_id"), want.drop("_run_id")
        assert got.count() == want.count() > 0, key
        assertDataFrameEqual(got, want)
    silver = table(spark, p, "silver_listings").where(F.col(DAY) == D4)
    assert silver.select("listing_id").distinct().count() == silver.count()
    assert table(spark, p, "bronze_listings").where(F.col(DAY) == D4).count() == (
        silver.count() + table(spark, p, "quarantine_listings").where(F.col(DAY) == D4).count()
    )


def test_predict_twice_at_once_without_retries_the_loser_fails_in_one_line(spark, lake, tmp_path):
    """FAULT_ATTEMPTS=1 turns the retry off: the clear failure a run gets when every attempt
    conflicts."""
    ref = lake.pipeline(lake.root)
    p, root = lake.copy("predict")
    jobs = [
        start_job(lake, "predict", root, tmp_path, "race", n, FAULT_ATTEMPTS="1")
        for n in ("a", "b")
    ]
    outcomes = sorted(j.wait() for j in jobs)
    (ok, _), (failed, err) = outcomes
    assert (ok, failed) == (0, 1), [e[-3000:] for _, e in outcomes]
    lines = [ln for ln in err.splitlines() if "predict failed" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert "another run wrote prediction_date=2026-01-04" in lines[0]
    assert "(ConcurrentAppendException, 1 attempt(s))" in lines[0]
    assert lines[0].endswith("re-running is safe")
    runs = runlog.runs(spark, p).where("job = 'predict' and run_date = '2026-01-04'")
    assert sorted(r.status for r in runs.collect()) == ["failed", "succeeded"]
    assert runs.where("error like 'ConcurrentWriteError: another run wrote%'").count() == 1

    got = table(spark, p, "predictions")
    assertDataFrameEqual(got, table(spark, ref, "predictions"))  # D3 and one copy of D4
    assert delta_io.checksum(got.where(F.col("prediction_date") == D4))[0] == (
        table(spark, p, "features").where(F.col("feature_date") == D4).count()
    )


# --- SIGKILL inside the write ----------------------------------------------------------------


def test_build_features_killed_inside_its_merge_reruns_to_the_uninterrupted_table(
    spark, lake, tmp_path
):
    ref = lake.pipeline(lake.root)
    p, root = lake.copy("build_features")
    path = p.table_path("features")
    before = delta_io.version(spark, path)
    job = start_job(lake, "build_features", root, tmp_path, "kill-merge", "k")
    await_path((tmp_path / "blocked").exists, "the MERGE's source scan", job)
    kill(job)
    assert delta_io.version(spark, path) == before  # killed before the MERGE committed
    assert table(spark, p, "features").where(F.col("feature_date") == D4).isEmpty()

    build_features.run(spark, p, D4)
    # feature rows hold no run id: the whole table equals the uninterrupted run's
    got, want = table(spark, p, "features"), table(spark, ref, "features")
    assertDataFrameEqual(got, want)
    assert delta_io.checksum(got) == delta_io.checksum(want)


def test_predict_killed_inside_its_write_reruns_to_the_uninterrupted_table(spark, lake, tmp_path):
    ref = lake.pipeline(lake.root)
    p, root = lake.copy("predict")
    path = p.table_path("predictions")
    before, files_before = delta_io.version(spark, path), data_files(path)
    job = start_job(lake, "predict", root, tmp_path, "kill-write", "k")
    await_path(
        lambda: (
            (tmp_path / "blocked").exists()
            and any("prediction_date=2026-01-04" in f for f in data_files(path) - files_before)
        ),
        "half of the date's files written",
        job,
    )
    kill(job)
    assert delta_io.version(spark, path) == before  # no commit: the files are orphans
    orphans = data_files(path) - files_before
    assert orphans and not {Path(f).name for f in orphans} & live_files(spark, path)
    assert table(spark, p, "predictions").where(F.col("prediction_date") == D4).isEmpty()

    predict.run(spark, p, D4)
    # prediction rows hold the model's name/version/run id, no id of the predict run
    got, want = table(spark, p, "predictions"), table(spark, ref, "predictions")
    assertDataFrameEqual(got, want)
    assert delta_io.checksum(got) == delta_io.checksum(want)
    assert not {Path(f).name for f in orphans} & live_files(spark, path)  # still ignored


# --- the conflict handling in-process, deterministically -------------------------------------


def _day(spark, n: int, tag: str):
    return spark.range(n).select(F.lit(D4).alias("d"), F.col("id"), F.lit(tag).alias("tag"))


def _held_until(df, started: Path, go: Path):
    """`df`, whose computation (inside the Delta write's transaction) signals `started` and
    waits for `go`."""
    s, g = str(started), str(go)

    def step(rows):
        import os
        import time

        open(s, "a").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(g) and time.monotonic() < deadline:
            time.sleep(0.02)
        yield from rows

    return df.sparkSession.createDataFrame(df.coalesce(1).rdd.mapPartitions(step), df.schema)


def _race(spark, path: str, tmp_path: Path, attempts: int) -> list[BaseException]:
    """A write of 5 'slow' rows for D4 that a write of 3 'fast' rows for D4 overtakes: the fast
    one commits between the slow one's snapshot and its commit."""
    started, go = tmp_path / "started", tmp_path / "go"
    errors: list[BaseException] = []

    def slow():
        try:
            df = _held_until(_day(spark, 5, "slow"), started, go)
            delta_io.replace_partition(df, path, "d", D4.isoformat(), "slow", "d", attempts)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 120
    while not started.exists() and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists(), errors
    delta_io.replace_partition(_day(spark, 3, "fast"), path, "d", D4.isoformat(), "fast", "d")
    go.touch()
    t.join(180)
    return errors


@pytest.mark.parametrize(
    "existing, conflict",
    [(True, "ConcurrentAppendException"), (False, "ProtocolChangedException")],
    ids=["existing-table", "new-table"],
)
def test_overtaken_write_is_retried_and_the_date_holds_one_copy(
    spark, tmp_path, caplog, existing, conflict
):
    path = str(tmp_path / "t")
    if existing:
        _day(spark, 2, "other").withColumn("d", F.lit(D3)).write.format("delta").partitionBy(
            "d"
        ).save(path)
    with caplog.at_level("WARNING", logger="lakeloop.delta_io"):
        assert _race(spark, path, tmp_path, attempts=3) == []
    retries = [r.getMessage() for r in caplog.records if "committed first" in r.getMessage()]
    assert len(retries) == 1 and f"({conflict})" in retries[0], retries
    counts = {
        (r.d, r.tag): r["count"]
        for r in delta_io.read(spark, path).groupBy("d", "tag").count().collect()
    }
    # the date is the retried (last) write's 5 rows; the overtaking write's 3 are replaced
    assert counts == ({(D3, "other"): 2} if existing else {}) | {(D4, "slow"): 5}


def test_overtaken_write_out_of_attempts_fails_in_one_line_and_writes_nothing(spark, tmp_path):
    path = str(tmp_path / "t")
    _day(spark, 2, "other").write.format("delta").partitionBy("d").save(path)
    v = delta_io.version(spark, path)
    (err,) = _race(spark, path, tmp_path, attempts=1)
    assert isinstance(err, delta_io.ConcurrentWriteError)  # a JobError: exit 1, no stack trace
    msg = str(err)
    assert "\n" not in msg and "concurrently (ConcurrentAppendException" in msg
    assert msg.endswith("re-running is safe")
    assert delta_io.version(spark, path) == v + 1  # only the overtaking write committed
    rows = delta_io.read(spark, path).groupBy("tag").count().collect()
    assert {r.tag: r["count"] for r in rows} == {"fast": 3}
