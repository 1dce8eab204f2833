"""The online scoring server (`lakeloop serve`): a Starlette app scoring JSON records with the
registry's champion (and challenger) through the JVM-free scorer.

Endpoints
- `POST /v1/predict`: `{"records": [{column: value, ...}, ...]}` (or `{"record": {...}}`).
  A record holds the model's input columns (optional ones may be absent or null) and may hold
  the entity key column(s) (`entity_key` of the spec), which route it and are echoed back.
  Answer: `{"request_id", "model": {"name", "version", "alias": "champion"}, "predictions":
  [{"prediction", "probability" (classification: one per class), "model_version",
  "model_alias", "entity_key" (when given)}]}`, one per record in order; `model` is the
  champion, each prediction names the version that scored it.
- `POST /v1/predict/by-key`: `{"keys": [{key column: value}, ...]}` (or `{"key": {...}}`):
  the features of each key from the online store, scored. A key the store does not hold is
  an item `{"entity_key", "error": {"code": "no_features", "reason"}}` in its place; the answer
  is 200 when at least one key was scored, 404 (`no_features`) when none was found, 422 when
  none could be scored for another reason (stored features the model cannot take).
- `GET /health`: 200 with the versions served, 503 without a champion.
- `GET /v1/model`: the model's name, task, served versions/aliases, input columns (type,
  required), entity key and challenger fraction.
- `GET /metrics`: Prometheus text, from a registry of the app's own.

Input checks (the request is rejected as a whole, naming the record and field; the server goes
on serving): malformed JSON 400; a body that is not an object, or without `records` 400; an
empty list 422; more than `serving.max_records` records 413; a body over
`serving.max_body_bytes` (Content-Length or the bytes streamed) 413; an unknown column, a
missing or null required column, a value of the wrong type 422 (integer columns take JSON
integers and numbers without a fraction, 3.0; float/double columns take any finite number,
integers too; a boolean is never a number and a number never a string: `models.convert`).
Values are converted to what Spark holds (`int` for integer columns, `float` for doubles, 32-bit
rounding for floats) so the scores equal the batch path's.

Traffic split: with a challenger and `serving.challenger_fraction` > 0, a record whose entity
key is given goes to the challenger iff the key's hash (the first 8 bytes of the sha256 of its
canonical JSON, `{"col": value}` sorted, compact, as a fraction of 2^64) is below the fraction:
the same entity always gets the same model. Records without a key go to the champion. A record
is checked against the model it is routed to; a column either model reads is not unknown.

Every record served, and every rejected request (one row, `status` rejected, with the reason),
is queued for the request log (`request_log`), never waited for. Scoring runs in the event
loop: it takes microseconds."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lakeloop.config import AppConfig, ConfigError
from lakeloop.ml import tracking
from lakeloop.serving.models import LoadedModel, ModelHolder, Snapshot, ValueTypeError
from lakeloop.serving.online_store import OnlineStoreError, SqliteOnlineStore, open_store
from lakeloop.serving.request_log import OK, LogRow, RequestLog
from lakeloop.serving.scorer import Scored, ScoreInputError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

PREDICT = "/v1/predict"
BY_KEY = "/v1/predict/by-key"
# request latency buckets (seconds): fine below a millisecond, where single records score
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_HASH_SPACE = float(2**64)


class RequestError(Exception):
    """A request the server does not score: the HTTP status, a stable code (also the metrics'
    error label), the reason, and where (the field and the record's index) when known."""

    def __init__(
        self,
        status: int,
        code: str,
        reason: str,
        field: str | None = None,
        record: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.field = field
        self.record = record

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "reason": self.reason,
                "field": self.field,
                "record": self.record,
            }
        }


def canonical_key(key: Mapping[str, Any]) -> str:
    """An entity key's canonical JSON: keys sorted, compact, UTF-8 as is."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_fraction(key: Mapping[str, Any]) -> float:
    """The entity key's place in [0, 1): the first 8 bytes of the sha256 of its canonical
    JSON, big-endian, over 2^64. A record goes to the challenger iff this is below the
    challenger fraction."""
    digest = hashlib.sha256(canonical_key(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The body as JSON; RequestError 400 for anything else (NaN and Infinity included)."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise RequestError(400, "malformed_json", f"the body is not valid JSON: {e}") from None


def _items(body: Any, many: str, one: str, limit: int) -> list[Any]:
    """The list under `many` (or the single item under `one`) of a request body."""
    if not isinstance(body, dict):
        raise RequestError(
            400, "bad_body", f"the body must be a JSON object with {many!r}, not {_kind(body)}"
        )
    extra = sorted(set(body) - {many, one})
    if extra:
        raise RequestError(
            400, "bad_body", f"unknown top-level field {extra[0]!r} (expected {many!r})", extra[0]
        )
    if many in body and one in body:
        raise RequestError(400, "bad_body", f"give either {many!r} or {one!r}, not both", one)
    if one in body:
        return [body[one]]
    if many not in body:
        raise RequestError(400, "bad_body", f"the body has no {many!r} list", many)
    items = body[many]
    if not isinstance(items, list):
        raise RequestError(400, "bad_body", f"{many!r} must be a list, not {_kind(items)}", many)
    if not items:
        raise RequestError(422, "empty", f"{many!r} is empty: nothing to score", many)
    if len(items) > limit:
        raise RequestError(
            413,
            "too_many_records",
            f"{len(items)} {many} in one request; at most {limit} (serving.max_records): "
            "split the request",
            many,
        )
    return items


def _kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), "null" if v is None else "a number"
    )


@dataclass
class _Routed:
    """A record checked and routed: the model that scores it and its inputs as Spark holds
    them."""

    index: int
    alias: str
    model: LoadedModel
    inputs: dict[str, Any]
    key: dict[str, Any] | None


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (apps never share counters)."""

    def __init__(self, holder: ModelHolder, request_log: RequestLog | None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lakeloop_serving_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lakeloop_serving_request_seconds",
            "request handling time by endpoint (seconds)",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "lakeloop_serving_errors",
            "rejected requests and failed items by reason code",
            ["reason"],
            registry=self.registry,
        )
        self.records = Counter(
            "lakeloop_serving_records",
            "records scored by model alias",
            ["alias"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(holder, request_log))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges and counters read from the holder and the request log at scrape time."""

    def __init__(self, holder: ModelHolder, request_log: RequestLog | None) -> None:
        self.holder = holder
        self.request_log = request_log

    def collect(self):
        snap = self.holder.snapshot
        versions = GaugeMetricFamily(
            "lakeloop_serving_model_version",
            "registry version served per alias (0: none)",
            labels=["alias"],
        )
        for alias in (tracking.CHAMPION, tracking.CHALLENGER):
            model = snap.get(alias)
            versions.add_metric([alias], model.ref.version if model else 0)
        yield versions
        yield CounterMetricFamily(
            "lakeloop_serving_model_load_failures",
            "failed registry look-ups and model loads (the served version was kept)",
            value=self.holder.load_failures,
        )
        if self.request_log is not None:
            rows = CounterMetricFamily(
                "lakeloop_serving_request_log_rows",
                "request-log rows by outcome: written to Delta, failed (in a fallback file), lost",
                labels=["outcome"],
            )
            rows.add_metric(["written"], self.request_log.rows_written)
            rows.add_metric(["failed"], self.request_log.rows_failed)
            rows.add_metric(["lost"], self.request_log.rows_lost)
            yield rows


class ScoringService:
    """The endpoints' logic, on the injected holder, store and request log."""

    def __init__(
        self,
        cfg: AppConfig,
        pipeline: Pipeline,
        holder: ModelHolder,
        store: SqliteOnlineStore | None,
        request_log: RequestLog | None,
        store_error: str | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        # when a request was served (its log row's served_at / served_date); tests replay a day
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.pipeline = pipeline
        self.holder = holder
        self.store = store
        self.store_error = store_error
        self.request_log = request_log
        self.entity_keys = list(pipeline.spec.entity_keys)
        self._key_set = frozenset(self.entity_keys)
        serving = pipeline.spec.serving
        self.challenger_fraction = serving.challenger_fraction if serving else 0.0
        self.model_name = pipeline.spec.model.name if pipeline.spec.model else pipeline.name
        self.metrics = Metrics(holder, request_log)

    # --- request handling -------------------------------------------------------------------

    async def _body(self, request: Request) -> Any:
        limit = self.cfg.serving.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise RequestError(400, "bad_body", "Content-Length is not a number") from None
            if declared > limit:
                raise RequestError(
                    413,
                    "body_too_large",
                    f"the body has {declared} bytes; at most {limit} (serving.max_body_bytes)",
                )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413,
                    "body_too_large",
                    f"the body is over {limit} bytes (serving.max_body_bytes)",
                )
            chunks.append(chunk)
        return parse_json(b"".join(chunks))

    def _champion(self) -> Snapshot:
        snap = self.holder.snapshot
        if snap.champion is None:
            raise RequestError(503, "no_champion", snap.reason or "no champion model loaded")
        return snap

    def _entity_key(self, record: Mapping[str, Any], i: int) -> dict[str, Any] | None:
        """The record's entity key (None without one); all key columns or none."""
        present = [c for c in self.entity_keys if record.get(c) is not None]
        if not present:
            return None
        if len(present) < len(self.entity_keys):
            missing = next(c for c in self.entity_keys if c not in present)
            raise RequestError(
                422,
                "bad_entity_key",
                f"entity key column {missing!r} is missing or null; the key is "
                f"{self.entity_keys} (all columns, or none)",
                missing,
                i,
            )
        key = {c: record[c] for c in self.entity_keys}
        for c, v in key.items():
            if isinstance(v, dict | list):
                raise RequestError(
                    422, "bad_entity_key", f"entity key column {c!r} is {_kind(v)}", c, i
                )
        return key

    def _route(self, snap: Snapshot, key: dict[str, Any] | None) -> tuple[str, LoadedModel]:
        if (
            key is not None
            and snap.challenger is not None
            and self.challenger_fraction > 0
            and key_fraction(key) < self.challenger_fraction
        ):
            return tracking.CHALLENGER, snap.challenger
        return tracking.CHAMPION, snap.champion  # type: ignore[return-value]

    @staticmethod
    def _inputs(model: LoadedModel, record: Mapping[str, Any], i: int) -> dict[str, Any]:
        """The record's values of `model`'s input columns, converted (RequestError 422)."""
        out: dict[str, Any] = {}
        for col in model.columns:
            v = record.get(col.name)
            if v is None:
                if col.required:
                    code, why = (
                        ("null_in_required", "is null")
                        if col.name in record
                        else ("missing_column", "is missing")
                    )
                    raise RequestError(
                        422,
                        code,
                        f"required column {col.name!r} ({col.kind}) {why}",
                        col.name,
                        i,
                    )
                out[col.name] = None
                continue
            try:
                out[col.name] = col.convert(v)
            except ValueTypeError as e:
                raise RequestError(
                    422, "wrong_type", f"column {col.name!r} ({col.kind}): {e}", col.name, i
                ) from None
        return out

    def _check_record(self, snap: Snapshot, record: Any, i: int) -> _Routed:
        if not isinstance(record, dict):
            raise RequestError(
                422,
                "bad_record",
                f"record {i} is {_kind(record)}; a record is an object of column values",
                None,
                i,
            )
        allowed = snap.champion.names | self._key_set  # type: ignore[union-attr]
        if snap.challenger is not None:
            allowed = allowed | snap.challenger.names
        unknown = record.keys() - allowed
        if unknown:
            name = sorted(unknown)[0]
            raise RequestError(
                422,
                "unknown_column",
                f"unknown column {name!r}: not an input of model {self.model_name} nor the "
                f"entity key {self.entity_keys}",
                name,
                i,
            )
        key = self._entity_key(record, i)
        alias, model = self._route(snap, key)
        return _Routed(i, alias, model, self._inputs(model, record, i), key)

    def _score(self, routed: Sequence[_Routed]) -> list[Scored]:
        """Scores in `routed`'s order, each model scoring its records in one call."""
        out: list[Scored | None] = [None] * len(routed)
        groups: dict[int, list[int]] = {}
        for pos, r in enumerate(routed):
            groups.setdefault(id(r.model), []).append(pos)
        for positions in groups.values():
            model = routed[positions[0]].model
            try:
                scores = model.scorer.score([routed[p].inputs for p in positions])
            except ScoreInputError as e:
                n = e.record
                bad = (
                    routed[positions[n]].index
                    if n is not None and 0 <= n < len(positions)
                    else self._first_failing(model, [routed[p] for p in positions])
                )
                raise RequestError(
                    422,
                    "bad_value",
                    f"column {e.column!r}: {e.reason}" if e.column else e.reason,
                    e.column,
                    bad,
                ) from None
            for p, s in zip(positions, scores, strict=True):
                out[p] = s
        return out  # type: ignore[return-value]

    @staticmethod
    def _first_failing(model: LoadedModel, routed: Sequence[_Routed]) -> int | None:
        """The index of the first record the model refuses on its own (error path only)."""
        for r in routed:
            try:
                model.scorer.score([r.inputs])
            except ScoreInputError:
                return r.index
        return None

    def _prediction(self, r: _Routed, s: Scored) -> dict[str, Any]:
        item: dict[str, Any] = {"prediction": s.prediction}
        if s.probability is not None:
            item["probability"] = list(s.probability)
        item["model_version"] = r.model.ref.version
        item["model_alias"] = r.alias
        if r.key is not None:
            item["entity_key"] = r.key
        return item

    @staticmethod
    def _positive(s: Scored) -> float | None:
        p = s.probability
        return p[1] if p is not None and len(p) == 2 else None

    def _ok_row(
        self, rid: str, at: dt.datetime, endpoint: str, r: _Routed, s: Scored, ms: float
    ) -> LogRow:
        return LogRow(
            rid,
            r.index,
            at,
            endpoint,
            r.key,
            r.inputs,
            r.model.ref.name,
            r.model.ref.version,
            r.alias,
            s.prediction,
            self._positive(s),
            ms,
            OK,
        )

    def _log(self, rows: list[LogRow]) -> None:
        if self.request_log is None:
            return
        try:
            self.request_log.append(rows)
        except Exception:  # never fail a request on its log (closed at shutdown)
            log.exception("could not queue %d request-log rows", len(rows))

    def _rejected(
        self,
        e: RequestError,
        rid: str,
        at: dt.datetime,
        endpoint: str,
        t0: float,
        items: Sequence[Any] | None = None,
    ) -> JSONResponse:
        ms = (time.perf_counter() - t0) * 1000.0
        record = None
        key = None
        if items is not None and e.record is not None and 0 <= e.record < len(items):
            record = items[e.record] if isinstance(items[e.record], dict) else None
            if record is not None:
                with contextlib.suppress(RequestError):
                    key = self._entity_key(record, e.record)
        self.metrics.errors.labels(e.code).inc()
        self._log([LogRow.rejected(rid, e.record, at, endpoint, key, record, ms, e.reason)])
        return JSONResponse({"request_id": rid, **e.body()}, status_code=e.status)

    async def predict(self, request: Request) -> Response:
        t0 = time.perf_counter()
        at = self.clock()
        rid = _request_id(request)
        records: list[Any] | None = None
        try:
            snap = self._champion()
            records = _items(
                await self._body(request), "records", "record", self.cfg.serving.max_records
            )
            routed = [self._check_record(snap, rec, i) for i, rec in enumerate(records)]
            scores = self._score(routed)
        except RequestError as e:
            return self._rejected(e, rid, at, PREDICT, t0, records)
        champion = snap.champion.ref  # type: ignore[union-attr]
        body = {
            "request_id": rid,
            "model": {
                "name": champion.name,
                "version": champion.version,
                "alias": tracking.CHAMPION,
            },
            "predictions": [self._prediction(r, s) for r, s in zip(routed, scores, strict=True)],
        }
        ms = (time.perf_counter() - t0) * 1000.0
        pairs = zip(routed, scores, strict=True)
        self._log([self._ok_row(rid, at, PREDICT, r, s, ms) for r, s in pairs])
        self._count_records(routed)
        return JSONResponse(body)

    def _count_records(self, routed: Sequence[_Routed]) -> None:
        challenger = sum(1 for r in routed if r.alias == tracking.CHALLENGER)
        if challenger:
            self.metrics.records.labels(tracking.CHALLENGER).inc(challenger)
        if len(routed) > challenger:
            self.metrics.records.labels(tracking.CHAMPION).inc(len(routed) - challenger)

    def _check_key(self, key: Any, i: int) -> dict[str, Any]:
        if not isinstance(key, dict):
            raise RequestError(
                422, "bad_record", f"key {i} is {_kind(key)}; a key is an object", None, i
            )
        unknown = sorted(key.keys() - self._key_set)
        if unknown:
            raise RequestError(
                422,
                "unknown_column",
                f"unknown column {unknown[0]!r} in key {i}: the entity key is {self.entity_keys}",
                unknown[0],
                i,
            )
        k = self._entity_key(key, i)
        if k is None:
            raise RequestError(
                422,
                "missing_column",
                f"key {i} has no entity key column {self.entity_keys[0]!r}",
                self.entity_keys[0],
                i,
            )
        return k

    async def predict_by_key(self, request: Request) -> Response:
        t0 = time.perf_counter()
        at = self.clock()
        rid = _request_id(request)
        keys: list[Any] | None = None
        try:
            snap = self._champion()
            if self.store is None:
                raise RequestError(503, "store_unavailable", self.store_error or "no online store")
            keys = _items(await self._body(request), "keys", "key", self.cfg.serving.max_records)
            checked = [self._check_key(k, i) for i, k in enumerate(keys)]
            try:
                rows = self.store.get(self.pipeline.name, checked)
            except OnlineStoreError as e:
                raise RequestError(503, "store_unavailable", str(e)) from None
        except RequestError as e:
            return self._rejected(e, rid, at, BY_KEY, t0, keys)
        routed: list[_Routed] = []
        failed: dict[int, RequestError] = {}
        for i, (key, row) in enumerate(zip(checked, rows, strict=True)):
            if row is None:
                failed[i] = RequestError(
                    404,
                    "no_features",
                    f"no features for key {canonical_key(key)} in the online store",
                    None,
                    i,
                )
                continue
            alias, model = self._route(snap, key)
            try:
                inputs = self._inputs(model, row, i)
            except RequestError as e:
                e.reason = f"stored features: {e.reason}"
                failed[i] = e
                continue
            routed.append(_Routed(i, alias, model, inputs, key))
        try:
            scores = self._score(routed) if routed else []
        except RequestError as e:
            return self._rejected(e, rid, at, BY_KEY, t0, checked)
        ms = (time.perf_counter() - t0) * 1000.0
        items: list[dict[str, Any] | None] = [None] * len(checked)
        log_rows = []
        for r, s in zip(routed, scores, strict=True):
            items[r.index] = self._prediction(r, s)
            log_rows.append(self._ok_row(rid, at, BY_KEY, r, s, ms))
        for i, e in failed.items():
            items[i] = {"entity_key": checked[i], "error": {"code": e.code, "reason": e.reason}}
            self.metrics.errors.labels(e.code).inc()
            log_rows.append(LogRow.rejected(rid, i, at, BY_KEY, checked[i], None, ms, e.reason))
        self._log(log_rows)
        self._count_records(routed)
        champion = snap.champion.ref  # type: ignore[union-attr]
        body: dict[str, Any] = {
            "request_id": rid,
            "model": {
                "name": champion.name,
                "version": champion.version,
                "alias": tracking.CHAMPION,
            },
            "predictions": items,
        }
        status = 200
        if not routed:
            first = next(iter(failed.values()))
            not_found = all(e.code == "no_features" for e in failed.values())
            status = 404 if not_found else first.status
            body["error"] = {
                "code": "no_features" if not_found else first.code,
                "reason": (
                    f"no features in the online store for any of the {len(checked)} key(s)"
                    if not_found
                    else f"no key could be scored: key {first.record}: {first.reason}"
                ),
                "field": "keys" if not_found else first.field,
                "record": None if not_found else first.record,
            }
        return JSONResponse(body, status_code=status)

    # --- information ------------------------------------------------------------------------

    def _versions(self, snap: Snapshot) -> dict[str, Any]:
        return {
            alias: (
                {"version": m.ref.version, "run_id": m.ref.run_id}
                if (m := snap.get(alias))
                else None
            )
            for alias in (tracking.CHAMPION, tracking.CHALLENGER)
        }

    async def health(self, request: Request) -> Response:
        snap = self.holder.snapshot
        body: dict[str, Any] = {"model": self.model_name, **self._versions(snap)}
        if snap.champion is None:
            reason = snap.reason or "no champion model loaded"
            return JSONResponse(
                {
                    "status": "unavailable",
                    **body,
                    "error": {"code": "no_champion", "reason": reason},
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", **body})

    @staticmethod
    def _describe(m: LoadedModel | None) -> dict[str, Any] | None:
        if m is None:
            return None
        return {
            "version": m.ref.version,
            "run_id": m.ref.run_id,
            "task": m.scorer.task,
            "estimator": m.scorer.estimator,
            "num_classes": m.scorer.num_classes,
            "inputs": [{"name": c.name, "type": c.kind, "required": c.required} for c in m.columns],
        }

    async def model(self, request: Request) -> Response:
        snap = self.holder.snapshot
        if snap.champion is None:
            e = RequestError(503, "no_champion", snap.reason or "no champion model loaded")
            return JSONResponse(e.body(), status_code=503)
        return JSONResponse(
            {
                "name": self.model_name,
                "task": snap.champion.scorer.task,
                "entity_key": self.entity_keys,
                "challenger_fraction": self.challenger_fraction,
                "aliases": {
                    tracking.CHAMPION: self._describe(snap.champion),
                    tracking.CHALLENGER: self._describe(snap.challenger),
                },
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def _request_id(request: Request) -> str:
    """The client's X-Request-ID (up to 128 characters), else a new one."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= 128:
        return given
    return uuid.uuid4().hex


def _timed(service: ScoringService, endpoint: str, handler: Callable) -> Callable:
    """`handler` counted and timed in the app's metrics."""
    requests = service.metrics.requests
    latency = service.metrics.latency.labels(endpoint)

    async def endpoint_fn(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except Exception:
            requests.labels(endpoint, "500").inc()
            service.metrics.errors.labels("internal").inc()
            log.exception("%s failed", endpoint)
            return JSONResponse(
                RequestError(500, "internal", f"{endpoint} failed: see the server log").body(),
                status_code=500,
            )
        latency.observe(time.perf_counter() - t0)
        requests.labels(endpoint, str(response.status_code)).inc()
        return response

    return endpoint_fn


def create_app(
    cfg: AppConfig,
    pipeline: Pipeline,
    holder: ModelHolder | None = None,
    store: SqliteOnlineStore | None = None,
    request_log: RequestLog | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Starlette:
    """The server for `pipeline`'s model. Components not given are made from the config
    (`ModelHolder.from_config`, `open_store`, `RequestLog.for_pipeline`); the app starts and
    stops those (lifespan: first load + poller; shutdown: poller, request log, store). Given
    ones are the caller's to start and stop."""
    if pipeline.spec.model is None:
        raise ConfigError(f"pipeline {pipeline.name} has no `model` section: nothing to serve")
    if pipeline.spec.serving is None:
        raise ConfigError(
            f"pipeline {pipeline.name} has no `serving` section (`serving: {{}}` takes the "
            "defaults): it names the request log's table and the challenger's share"
        )
    own_holder = holder is None
    own_store = store is None
    own_log = request_log is None
    holder = holder or ModelHolder.from_config(cfg, pipeline)
    store_error = None
    if store is None:
        try:
            store = open_store(cfg)
        except OnlineStoreError as e:
            store_error = f"the online store is unavailable: {e}"
            log.warning("%s; /v1/predict/by-key will answer 503", store_error)
    request_log = request_log or RequestLog.for_pipeline(pipeline)
    service = ScoringService(cfg, pipeline, holder, store, request_log, store_error, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_holder:
            await run_in_threadpool(holder.start)
        try:
            yield
        finally:
            await run_in_threadpool(_shutdown)

    def _shutdown() -> None:
        if own_holder:
            holder.stop()
        if own_log:
            request_log.close()
            log.info(
                "request log closed: %d rows written, %d in fallback files, %d lost",
                request_log.rows_written,
                request_log.rows_failed,
                request_log.rows_lost,
            )
        if own_store and store is not None:
            store.close()

    routes = [
        Route(PREDICT, _timed(service, PREDICT, service.predict), methods=["POST"]),
        Route(BY_KEY, _timed(service, BY_KEY, service.predict_by_key), methods=["POST"]),
        Route("/health", _timed(service, "/health", service.health), methods=["GET"]),
        Route("/v1/model", _timed(service, "/v1/model", service.model), methods=["GET"]),
        Route("/metrics", service.metrics_text, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


class _Server(uvicorn.Server):
    """uvicorn's server, returning after the graceful shutdown a SIGTERM/SIGINT starts
    (uvicorn would raise the signal again once shut down, ending the process by it)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if captured:
            captured.clear()


def serve(cfg: AppConfig, pipeline: Pipeline, host: str, port: int) -> int:
    """Serve `pipeline`'s model on host:port (0: a free port) until SIGTERM/SIGINT; then stop
    polling, write the queued request-log rows and close the store. 0 after a clean stop."""
    app = create_app(cfg, pipeline)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"serve: cannot listen on {host}:{port}: {e}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    log.info(
        "serving %s (model %s) on http://%s:%d",
        pipeline.name,
        pipeline.spec.model.name,
        bound_host,
        bound_port,
    )
    server = _Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=30)
    )
    server.run(sockets=[sock])
    log.info("stopped serving %s", pipeline.name)
    return 0 if server.started else 1
