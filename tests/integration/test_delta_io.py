"""delta_io's commit bookkeeping without Spark jobs: the version a run committed (from the
newest commit files of the log), the run that wrote a version, and table properties (the
per-table statistics columns) set once on a table an earlier lakeloop created."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import functions as F

from lakeloop import delta_io
from lakeloop.schemas import STATS_COLUMNS

PROPS = delta_io.stats_properties(STATS_COLUMNS["bronze_files"])


def _day(spark, d: str, n: int = 3):
    return spark.range(n).select(
        F.col("id"), F.col("id").cast("string").alias("s"), F.lit(d).cast("date").alias("d")
    )


def _commits(path: Path) -> list[dict]:
    out = []
    for f in sorted((path / "_delta_log").glob("*.json")):
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        out.append(next(x["commitInfo"] for x in lines if "commitInfo" in x))
    return out


def test_replace_partition_returns_its_version_and_written_by_names_the_run(spark, tmp_path):
    path = str(tmp_path / "t")
    v0 = delta_io.replace_partition(
        _day(spark, "2026-01-01"), path, "d", "2026-01-01", "run-a", "d"
    )
    v1 = delta_io.replace_partition(
        _day(spark, "2026-01-02"), path, "d", "2026-01-02", "run-b", "d"
    )
    assert (v0, v1) == (0, 1)
    assert delta_io.written_by(spark, path, 0) == "run-a"
    assert delta_io.written_by(spark, path, 1) == "run-b"
    # the latest commit carrying the run id, searched newest first
    assert delta_io.version_written_by(spark, path, "run-a") == 0
    assert [c.get("userMetadata") for c in _commits(tmp_path / "t")] == ["run-a", "run-b"]


def test_version_written_by_an_unknown_run_or_of_no_table_is_none(spark, tmp_path):
    path = str(tmp_path / "t")
    assert delta_io.version_written_by(spark, path, "run-a") is None  # no table yet
    delta_io.replace_partition(_day(spark, "2026-01-01"), path, "d", "2026-01-01", "run-a", "d")
    assert delta_io.version_written_by(spark, path, "no-such-run") is None
    assert delta_io.written_by(spark, path, 7) is None  # no such version


def test_stats_properties_are_set_when_the_write_creates_the_table(spark, tmp_path):
    path = str(tmp_path / "t")
    delta_io.replace_partition(
        _day(spark, "2026-01-01"), path, "d", "2026-01-01", "run-a", "d", properties=PROPS
    )
    props = {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    assert props["delta.dataSkippingNumIndexedCols"] == "0"
    assert delta_io.version(spark, path) == 0  # set by the creating write: no commit of its own
    add = [
        json.loads(x)["add"]
        for x in (tmp_path / "t/_delta_log/00000000000000000000.json").read_text().splitlines()
        if x.startswith('{"add"')
    ]
    stats = [json.loads(a["stats"]) for a in add]
    assert all(set(st) == {"numRecords"} for st in stats)  # no min/max/null counts
    assert sum(st["numRecords"] for st in stats) == 3


def test_keep_properties_sets_them_once_on_an_older_table(spark, tmp_path):
    path = str(tmp_path / "t")
    delta_io.replace_partition(_day(spark, "2026-01-01"), path, "d", "2026-01-01", "old", "d")
    some = delta_io.stats_properties(["id"])
    delta_io.replace_partition(
        _day(spark, "2026-01-02"), path, "d", "2026-01-02", "new", "d", properties=some
    )
    props = {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    assert props["delta.dataSkippingStatsColumns"] == "id"
    ops = [c["operation"] for c in _commits(tmp_path / "t")]
    assert ops == ["WRITE", "WRITE", "SET TBLPROPERTIES"]  # for the writes that follow
    delta_io.keep_properties(spark, path, some)  # already set: nothing more
    assert delta_io.version(spark, path) == 2
    assert delta_io.version_written_by(spark, path, "new") == 1  # past the ALTER's commit
