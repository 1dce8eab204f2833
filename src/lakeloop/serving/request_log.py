"""The served requests' log: one row per scored (or rejected) record, appended to the Delta
table `serving.log_table` through delta-rs (no JVM) by a background writer.

`append` only queues (a lock and a list append: the request path never waits on I/O); the
writer appends a batch every `serving.log_batch_rows` rows or `serving.log_flush_s` seconds,
whichever comes first, partitioned by `served_date` (the pipeline's local date). `close`
writes everything still queued: nothing accepted is lost on a clean stop.

A failed append is retried (`retries` times, backing off); then the batch is written as JSON
lines to a file under `fallback_dir` (`<project>/.serving/unlogged/`) with an ERROR log naming
it, to be loaded later: a row is never dropped silently.

delta-rs writes here to a local lakehouse only (a path or `file:` URI); another scheme is a
RequestLogError at start naming it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from lakeloop import uris
from lakeloop.config import ConfigError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("record_index", pa.int32()),  # null: the request had no readable records
        pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("served_date", pa.date32(), nullable=False),  # in the pipeline's time zone
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("entity_key", pa.string()),  # JSON of the key columns
        pa.field("features", pa.string()),  # JSON of the model inputs as scored
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int32()),
        pa.field("model_alias", pa.string()),  # champion | challenger
        pa.field("prediction", pa.float64()),
        pa.field("probability", pa.float64()),  # classification: the positive class'
        pa.field("latency_ms", pa.float64()),
        pa.field("status", pa.string(), nullable=False),  # ok | rejected
        pa.field("reason", pa.string()),  # why rejected; null when ok
    ]
)
PARTITION_BY = ["served_date"]
OK = "ok"
REJECTED = "rejected"


class RequestLogError(ConfigError):
    """The request log's table cannot be written by this process (e.g. its storage)."""


@dataclass(slots=True)
class LogRow:
    """One served record, as the app hands it over (`entity_key` and `features` are JSON-ed
    and `served_date` derived by the writer, off the request path)."""

    request_id: str
    record_index: int | None
    served_at: dt.datetime  # aware, UTC
    endpoint: str
    entity_key: dict[str, Any] | None
    features: dict[str, Any] | None
    model_name: str | None
    model_version: int | None
    model_alias: str | None
    prediction: float | None
    probability: float | None
    latency_ms: float | None
    status: str
    reason: str | None = None

    @classmethod
    def rejected(
        cls,
        request_id: str,
        record_index: int | None,
        served_at: dt.datetime,
        endpoint: str,
        entity_key: dict[str, Any] | None,
        features: dict[str, Any] | None,
        latency_ms: float,
        reason: str,
    ) -> LogRow:
        """A refused request (or item): no model, no score, `status` rejected and why."""
        return cls(
            request_id,
            record_index,
            served_at,
            endpoint,
            entity_key,
            features,
            None,
            None,
            None,
            None,
            None,
            latency_ms,
            REJECTED,
            reason,
        )


def local_uri(uri: str) -> str:
    """The table location as delta-rs takes it here: an absolute local path. RequestLogError
    for a lakehouse on another storage."""
    if not uris.is_local(uri):
        raise RequestLogError(
            f"the request log {uri} is on {uris.scheme(uri)!r} storage; the server writes it "
            "with delta-rs, which lakeloop uses on a local lakehouse only (a path or file:// "
            "URI). Serve from a local lakehouse or set lakehouse_root to one"
        )
    path = uris.local_path(uri)
    if not path.is_absolute():
        raise RequestLogError(f"the request log {uri}: the path must be absolute")
    return str(path)


def _json(v: dict[str, Any] | None) -> str | None:
    if v is None:
        return None
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)


class RequestLog:
    """The background writer of one log table (see the module docstring). Starts writing at
    construction; `close` once at the end."""

    def __init__(
        self,
        uri: str,
        zone: str,
        fallback_dir: Path,
        batch_rows: int = 500,
        flush_s: float = 2.0,
        retries: int = 3,
        retry_wait_s: float = 0.5,
    ) -> None:
        self.uri = local_uri(uri)
        self.zone = ZoneInfo(zone)
        self.fallback_dir = Path(fallback_dir)
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.retries = max(1, retries)
        self.retry_wait_s = retry_wait_s
        self.rows_written = 0  # appended to the Delta table
        self.rows_failed = 0  # written to a fallback file instead
        self.rows_lost = 0  # not even that (logged CRITICAL with the rows' count)
        self.appends_failed = 0  # failed attempts (retried or not)
        self._rows: list[LogRow] = []
        self._first_at = 0.0  # monotonic time the oldest queued row arrived
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline) -> RequestLog:
        """The log table of `pipeline.spec.serving`, with the config's batching."""
        serving = pipeline.spec.serving
        if serving is None:
            raise RequestLogError(
                f"pipeline {pipeline.name} has no `serving` section (serving: {{}} takes the "
                "defaults): it names the request log's table"
            )
        s = pipeline.cfg.serving
        return cls(
            pipeline.table_path(serving.log_table),
            pipeline.spec.timezone,
            pipeline.cfg.path(".serving/unlogged"),
            batch_rows=s.log_batch_rows,
            flush_s=s.log_flush_s,
        )

    @property
    def rows_done(self) -> int:
        """Rows out of the queue: appended, in a fallback file or lost."""
        return self.rows_written + self.rows_failed + self.rows_lost

    def append(self, rows: Iterable[LogRow]) -> None:
        """Queue rows for the writer (never waits on I/O). RequestLogError after `close`."""
        with self._cond:
            if self._closing:
                raise RequestLogError(f"the request log {self.uri} is closed")
            was_empty = not self._rows
            if was_empty:
                self._first_at = time.monotonic()
            self._rows.extend(rows)
            if was_empty or len(self._rows) >= self.batch_rows:
                self._cond.notify_all()  # the writer: a flush deadline, or a full batch

    def wait_done(self, rows: int, timeout_s: float) -> bool:
        """Wait until `rows` rows in all have left the queue (`rows_done`); False on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: self.rows_done >= rows, timeout_s)

    def close(self, timeout_s: float = 120.0) -> None:
        """Write everything queued, then stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error(
                "the request log %s did not finish writing within %.0f s (%d rows queued)",
                self.uri,
                timeout_s,
                len(self._rows),
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._rows:
                        self._cond.wait(self._first_at + self.flush_s - time.monotonic())
                    else:
                        self._cond.wait()
                if not self._rows:  # closing, all written
                    return
                batch, self._rows = self._rows, []
            self._write(batch)
            with self._cond:
                self._cond.notify_all()  # wait_done

    def _due(self) -> bool:
        """A batch is to be written now (or the writer is to stop: closing, queue empty)."""
        if self._closing:
            return True
        if len(self._rows) >= self.batch_rows:
            return True
        return bool(self._rows) and time.monotonic() >= self._first_at + self.flush_s

    def _table(self, batch: list[LogRow]) -> pa.Table:
        cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
        for r in batch:
            cols["request_id"].append(r.request_id)
            cols["record_index"].append(r.record_index)
            cols["served_at"].append(r.served_at)
            cols["served_date"].append(r.served_at.astimezone(self.zone).date())
            cols["endpoint"].append(r.endpoint)
            cols["entity_key"].append(_json(r.entity_key))
            cols["features"].append(_json(r.features))
            cols["model_name"].append(r.model_name)
            cols["model_version"].append(r.model_version)
            cols["model_alias"].append(r.model_alias)
            cols["prediction"].append(r.prediction)
            cols["probability"].append(r.probability)
            cols["latency_ms"].append(r.latency_ms)
            cols["status"].append(r.status)
            cols["reason"].append(r.reason)
        return pa.table(cols, schema=SCHEMA)

    def _write(self, batch: list[LogRow]) -> None:
        from deltalake import write_deltalake

        error: Exception | None = None
        for attempt in range(1, self.retries + 1):
            try:
                write_deltalake(
                    self.uri, self._table(batch), mode="append", partition_by=PARTITION_BY
                )
            except Exception as e:
                error = e
                self.appends_failed += 1
                log.warning(
                    "request log %s: append of %d rows failed (attempt %d of %d): %s",
                    self.uri,
                    len(batch),
                    attempt,
                    self.retries,
                    e,
                )
                if attempt < self.retries:
                    time.sleep(self.retry_wait_s * attempt)
                continue
            self.rows_written += len(batch)
            return
        self._fallback(batch, error)

    def _fallback(self, batch: list[LogRow], error: Exception | None) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.fallback_dir / f"{Path(self.uri).name}-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as f:
                for r in batch:
                    row = asdict(r)
                    row["served_date"] = r.served_at.astimezone(self.zone).date()
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        except OSError as e:
            self.rows_lost += len(batch)
            log.critical(
                "request log %s: %d rows LOST: the append failed (%s) and so did writing them "
                "to %s (%s)",
                self.uri,
                len(batch),
                error,
                path,
                e,
            )
            return
        self.rows_failed += len(batch)
        log.error(
            "request log %s: %d rows could not be appended after %d attempts (%s); written to "
            "%s instead (JSON lines, the table's columns)",
            self.uri,
            len(batch),
            self.retries,
            error,
            path,
        )
