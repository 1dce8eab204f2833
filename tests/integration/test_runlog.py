"""The run log: a marker at a run's start (shown as `running`), one row with its outcome at
its end; a run killed in between stays `running` until the next run of its job and date marks
it `abandoned` (only when its process is gone from this host: never a live run, never another
host's)."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakeloop import delta_io, runlog
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_files
from tests.conftest import ROOT

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
JOB = "ingest_files"

# Runs in the job's process before `lakeloop.cli.main()`: its bronze write blocks forever
# (after the run started and logged itself), so the test can kill it or race it there.
HOOK = """
import os, sys, time
from pathlib import Path

from lakeloop import delta_io


def blocked(*args, **kwargs):
    Path(os.environ["BLOCKED_AT"]).touch()
    while True:
        time.sleep(1)


delta_io.replace_partition = blocked
from lakeloop.cli import main

sys.exit(main())
"""


@pytest.fixture
def landed(houses):
    gen.generate(houses, start=D1, days=1, rows_per_day=20, produce=False)
    return houses


def _gone() -> tuple[int, str]:
    """The pid and start time of a process that has ended (with its start time, a later
    process given the same pid is not mistaken for it)."""
    proc = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    started = runlog._process_start(proc.pid)
    proc.communicate(b"\n")
    return proc.pid, started


def _running(p, run_date, host, pid, pid_start=None) -> runlog.RunRecord:
    """The record of a run of another process, as it is when it writes its marker."""
    rec = runlog.RunRecord(job=JOB, pipeline=p.name, run_date=run_date, env=p.cfg.env)
    rec.details.update(host=host, pid=str(pid), **({"pid_start": pid_start} if pid_start else {}))
    return rec


def _status(spark, p) -> dict[str, str]:
    return {r.run_id: r.status for r in runlog.runs(spark, p).collect()}


def test_next_run_marks_only_its_own_dead_runs_abandoned(spark, landed):
    p, host = landed, socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        me = runlog.process_identity()
        earlier = {
            "dead": _running(p, D1, host, *_gone()),
            "reused": _running(p, D1, host, os.getpid(), pid_start="1"),  # a reused pid
            "alive": _running(p, D1, host, live.pid, runlog._process_start(live.pid)),
            "mine": _running(p, D1, host, me["pid"], me["pid_start"]),  # this very process
            "elsewhere": _running(p, D1, "another-host", *_gone()),
            "other_date": _running(p, D2, host, *_gone()),
        }
        for r in earlier.values():  # what each of those runs did at its start
            runlog.write_marker(spark, p, r)
        dead, reused, alive, mine, elsewhere, other_date = (r.run_id for r in earlier.values())
        # before any commit of the log: the markers are the runs in progress
        assert set(_status(spark, p).values()) == {"running"} and len(_status(spark, p)) == 6
        before = delta_io.version(spark, p.table_path("run_log"))

        rec = ingest_files.run(spark, p, D1)

        status = _status(spark, p)
        assert status[rec.run_id] == "succeeded"
        assert {k: status[k] for k in (dead, reused)} == {dead: "abandoned", reused: "abandoned"}
        for run_id in (alive, mine, elsewhere, other_date):
            assert status[run_id] == "running", run_id
        assert live.poll() is None
        # marking is done once: a next run finds nothing more to mark
        again = _running(p, D1, host, me["pid"], me["pid_start"])
        assert runlog.abandoned(spark, p, again) == []
        # in progress per their markers: the runs not marked (the finished run removed its own)
        markers = {f.stem for f in Path(runlog.marker_dir(p, JOB, D1)).glob("*.json")}
        assert markers == {alive, mine, elsewhere}
    finally:
        live.kill()
        live.wait()
    row = runlog.runs(spark, p).where(F.col("run_id") == dead).first()
    assert row.details["abandoned_by"] == rec.run_id
    assert f"its process (pid {row.details['pid']} on {host}) ended without recording" in row.error
    # one commit per run: its outcome and the abandoned runs it found, together
    raw = delta_io.read(spark, p.table_path("run_log"))
    assert delta_io.version(spark, p.table_path("run_log")) == (0 if before is None else before + 1)
    assert [r.status for r in raw.where(F.col("run_id") == dead).collect()] == ["abandoned"]
    assert [r.status for r in raw.where(F.col("run_id") == rec.run_id).collect()] == ["succeeded"]


def test_latest_row_per_run_prefers_an_outcome_over_abandoned_over_running(spark):
    t = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    rows = [
        ("a", "running", t),
        ("a", "succeeded", t + dt.timedelta(seconds=5)),
        ("b", "running", t),
        ("b", "abandoned", t + dt.timedelta(hours=1)),
        ("c", "abandoned", t + dt.timedelta(hours=1)),  # judged gone, yet it ended itself
        ("c", "failed", t + dt.timedelta(seconds=5)),
        ("d", "running", t),
    ]
    df = spark.createDataFrame(rows, "run_id string, status string, finished_at timestamp")
    got = {r.run_id: r.status for r in runlog.latest(df).collect()}
    assert got == {"a": "succeeded", "b": "abandoned", "c": "failed", "d": "running"}


def _start(p, spec: Path, blocked_at: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", HOOK, "run", JOB, "--pipeline", str(spec)]
    cmd += ["--date", D1.isoformat(), "--env", "test", "--set", f"lakehouse_root={p.root}"]
    env = {**os.environ, "BLOCKED_AT": str(blocked_at), "LAKELOOP_HOME": str(ROOT)}
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _await_blocked(proc: subprocess.Popen, blocked_at: Path, log: Path, seconds=600) -> None:
    deadline = time.monotonic() + seconds
    while not blocked_at.exists():
        assert proc.poll() is None, f"job ended ({proc.returncode}): {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the job's write"
        time.sleep(0.1)


def test_sigkilled_run_stays_running_until_the_next_run_marks_it_abandoned(spark, landed, tmp_path):
    """Two real job processes reach their write; one is SIGKILLed there, the other keeps
    running. The killed one's row says `running`; the next run of the date marks it
    `abandoned` and leaves the live one alone."""
    p = landed
    spec = p.source_file
    jobs = {
        name: (tmp_path / f"{name}.blocked", tmp_path / f"{name}.log") for name in ("dead", "live")
    }
    procs = {name: _start(p, spec, *files) for name, files in jobs.items()}
    try:
        for name, proc in procs.items():
            _await_blocked(proc, *jobs[name])
        os.killpg(procs["dead"].pid, signal.SIGKILL)
        assert procs["dead"].wait(60) == -signal.SIGKILL

        by_pid = {int(r.details["pid"]): r for r in runlog.runs(spark, p).collect()}
        killed, live = by_pid[procs["dead"].pid], by_pid[procs["live"].pid]
        assert (killed.status, live.status) == ("running", "running")
        assert killed.job == JOB and killed.run_date == D1
        assert killed.details["host"] == socket.gethostname()

        rec = ingest_files.run(spark, p, D1)

        status = _status(spark, p)
        assert status[killed.run_id] == "abandoned"
        assert status[live.run_id] == "running" and procs["live"].poll() is None
        assert status[rec.run_id] == "succeeded"
        assert {f.stem for f in Path(runlog.marker_dir(p, JOB, D1)).glob("*.json")} == {live.run_id}
        assert delta_io.read(spark, p.table_path("bronze_listings")).count() == 20
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(60)
