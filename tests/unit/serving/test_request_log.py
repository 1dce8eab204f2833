"""The request log's background writer: batches by size and by time, everything queued written
at close, the local date of the pipeline's zone, a failing append ending in the fallback file
(never lost), and storage delta-rs does not write here refused by name."""

import datetime as dt
import json
import logging

import pytest
from deltalake import DeltaTable

from lakeloop.serving.request_log import (
    OK,
    REJECTED,
    SCHEMA,
    LogRow,
    RequestLog,
    RequestLogError,
    local_uri,
)

ZONE = "America/New_York"
# 23:30 on Mar 2 in New York, already Mar 3 in UTC
LATE = dt.datetime(2026, 3, 3, 4, 30, tzinfo=dt.UTC)


def _row(i: int, at: dt.datetime = LATE, status: str = OK) -> LogRow:
    ok = status == OK
    return LogRow(
        request_id=f"req-{i // 10}",
        record_index=i % 10,
        served_at=at,
        endpoint="/v1/predict",
        entity_key={"listing_id": f"L{i}"},
        features={"sqft": 1000 + i, "zipcode": "9ü", "bathrooms": 1.5},
        model_name="m" if ok else None,
        model_version=3 if ok else None,
        model_alias="champion" if ok else None,
        prediction=float(i) * 1.25 if ok else None,
        probability=None,
        latency_ms=0.5,
        status=status,
        reason=None if ok else "wrong type",
    )


def _read(uri) -> list[dict]:
    rows = DeltaTable(str(uri)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: (r["request_id"], r["record_index"]))


def test_a_full_batch_is_written_without_waiting_for_the_timer(tmp_path):
    uri = tmp_path / "log"
    rl = RequestLog(str(uri), ZONE, tmp_path / "fb", batch_rows=3, flush_s=3600)
    try:
        rl.append([_row(0), _row(1)])
        assert not rl.wait_done(1, 0.3)  # under the batch size, the timer an hour away
        assert not uri.exists()
        rl.append([_row(2)])
        assert rl.wait_done(3, 30)
        assert [r["record_index"] for r in _read(uri)] == [0, 1, 2]
    finally:
        rl.close()
    assert rl.rows_written == 3 and rl.rows_failed == 0


def test_a_partial_batch_is_written_after_flush_s(tmp_path):
    uri = tmp_path / "log"
    rl = RequestLog(str(uri), ZONE, tmp_path / "fb", batch_rows=1000, flush_s=0.2)
    try:
        rl.append([_row(7)])
        assert rl.wait_done(1, 30)
        (row,) = _read(uri)
    finally:
        rl.close()
    assert row["served_at"] == LATE
    assert row["served_date"] == dt.date(2026, 3, 2)  # the local date in New York, not UTC's
    assert json.loads(row["features"]) == {"sqft": 1007, "zipcode": "9ü", "bathrooms": 1.5}
    assert json.loads(row["entity_key"]) == {"listing_id": "L7"}
    assert (row["model_version"], row["prediction"], row["status"]) == (3, 8.75, OK)
    assert DeltaTable(str(uri)).metadata().partition_columns == ["served_date"]
    assert DeltaTable(str(uri)).schema().to_arrow().names == SCHEMA.names


def test_close_writes_every_queued_row(tmp_path):
    uri = tmp_path / "log"
    rl = RequestLog(str(uri), ZONE, tmp_path / "fb", batch_rows=1000, flush_s=3600)
    early = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    rows = [_row(i, early if i % 2 else LATE, OK if i % 5 else REJECTED) for i in range(25)]
    for start in range(0, 25, 4):
        rl.append(rows[start : start + 4])
    rl.close()
    got = _read(uri)
    assert len(got) == 25 and rl.rows_written == 25
    by_id = {(r["request_id"], r["record_index"]): r for r in got}
    for r in rows:
        g = by_id[(r.request_id, r.record_index)]
        assert (g["status"], g["prediction"], g["reason"]) == (r.status, r.prediction, r.reason)
        assert g["served_date"] == dt.date(2026, 3, 2)  # 12:00 UTC and 04:30 UTC: both Mar 2
    with pytest.raises(RequestLogError, match="is closed"):
        rl.append([_row(99)])


def test_a_failing_append_ends_in_the_fallback_file(tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the table's parent folder should be")
    uri = blocker / "log"
    fallback = tmp_path / "unlogged"
    rl = RequestLog(str(uri), ZONE, fallback, batch_rows=2, flush_s=3600, retry_wait_s=0.01)
    with caplog.at_level(logging.WARNING, logger="lakeloop.serving.request_log"):
        rl.append([_row(0), _row(1), _row(2)])
        rl.close()
    assert (rl.rows_written, rl.rows_failed, rl.rows_lost) == (0, 3, 0)
    assert rl.appends_failed == rl.retries  # one batch (all queued before the writer woke)
    (path,) = fallback.glob("log-*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["request_id"], x["record_index"]) for x in lines] == [
        ("req-0", 0),
        ("req-0", 1),
        ("req-0", 2),
    ]
    assert lines[0]["served_date"] == "2026-03-02" and lines[0]["features"]["sqft"] == 1000
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()
    assert "3 rows could not be appended after 3 attempts" in errors[0].getMessage()


def test_storage_other_than_local_is_refused_by_name(tmp_path):
    with pytest.raises(RequestLogError, match="'hdfs' storage"):
        RequestLog("hdfs://nn:8020/lake/predictions/x", ZONE, tmp_path)
    assert local_uri(f"file://{tmp_path}/t") == f"{tmp_path}/t"
    assert local_uri(f"{tmp_path}/t") == f"{tmp_path}/t"
