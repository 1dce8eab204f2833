"""The online store: the latest feature row per entity key, read by key at request time.

`materialize` writes it from the Delta feature table (Spark, one SQLite transaction per
partition); `serve` reads it (`get`, one SELECT for all the keys of a request). No Spark here.

This is the embedded, single-machine default: one SQLite file (WAL mode: readers never wait for
a writer) at `serving.online_store.path`. On a cluster that file lives on the machine that runs
the executors, so it only suits a deployment where the executors and the server share one
machine; a shared store (Redis) is the deployment profile for real clusters.

Layout: one table `online_features` of (pipeline, key, ts_us, feature_date, row), primary key
(pipeline, key), and `online_pipelines` holding each pipeline's key columns and their types.
- `key`: the JSON array of the key values (composite keys: all key columns, in order).
- `row`: the stored feature row as JSON. Values round-trip exactly: ints stay ints, floats stay
  floats (Python's shortest repr, bit-exact; NaN/Infinity too), booleans, strings, None;
  timestamps become ISO strings (aware ones in UTC, `+00:00`), dates ISO dates, decimals
  strings, lists and dicts recursively. `get` returns those values.
- `ts_us`, `feature_date`: the row's timestamp (microseconds since the epoch, a naive timestamp
  taken as UTC) and date, what decides whether an incoming row is older than the stored one.

Writes are upserts that never replace a newer row by an older one: the incoming row replaces
the stored one only when (timestamp, date) is not older (a null is older than any value), so
materializing an old date after a newer one changes nothing, and re-materializing a date
writes the same rows again. Each `write` is one transaction (BEGIN IMMEDIATE); concurrent
writers (two Spark partitions) wait for each other up to `timeout_s` instead of failing.

Reads are thread-safe: each thread gets its own connection (opened on first use)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lakeloop.config import AppConfig

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_S = 60.0  # how long a writer waits for another writer's transaction
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_OLDEST = -(2**63)  # a null timestamp: older than any
_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    pipeline TEXT NOT NULL,
    key TEXT NOT NULL,
    ts_us INTEGER,
    feature_date TEXT,
    row TEXT NOT NULL,
    PRIMARY KEY (pipeline, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_pipelines (
    pipeline TEXT PRIMARY KEY,
    key_columns TEXT NOT NULL,
    key_types TEXT NOT NULL
);
"""
# replace only when the incoming row is not older: (timestamp, date) compared as a pair
_UPSERT = f"""
INSERT INTO online_features (pipeline, key, ts_us, feature_date, row) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (pipeline, key) DO UPDATE SET
    ts_us = excluded.ts_us, feature_date = excluded.feature_date, row = excluded.row
WHERE (coalesce(excluded.ts_us, {_OLDEST}), coalesce(excluded.feature_date, ''))
   >= (coalesce(online_features.ts_us, {_OLDEST}), coalesce(online_features.feature_date, ''))
"""
_SELECT = (
    "SELECT key, row FROM online_features "
    "WHERE pipeline = ? AND key IN (SELECT value FROM json_each(?))"
)
# a key value's type as stored in online_pipelines.key_types
_KEY_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


class OnlineStoreError(RuntimeError):
    """The online store cannot be opened, or a row or key does not fit it; the message names
    the store's path and what is wrong."""


def encode_value(v: Any, column: str = "?") -> Any:
    """A Python value as the JSON-able value the store keeps (see the module docstring)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dt.datetime):
        return (v.astimezone(dt.UTC) if v.tzinfo else v).isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, list | tuple):
        return [encode_value(x, column) for x in v]
    if isinstance(v, Mapping):
        return {str(k): encode_value(x, column) for k, x in v.items()}
    raise OnlineStoreError(
        f"column {column}: a {type(v).__name__} value cannot be stored (store numbers, "
        "booleans, strings, dates, timestamps, decimals, lists or maps)"
    )


def _ts_us(v: Any, column: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v)
        except ValueError:
            raise OnlineStoreError(f"column {column}: {v!r} is not an ISO timestamp") from None
    if not isinstance(v, dt.datetime):
        raise OnlineStoreError(f"column {column}: a timestamp is needed, got {type(v).__name__}")
    delta = (v if v.tzinfo else v.replace(tzinfo=dt.UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _iso_date(v: Any, column: str) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime) or not isinstance(v, dt.date | str):
        raise OnlineStoreError(f"column {column}: a date is needed, got {type(v).__name__}")
    try:
        return (dt.date.fromisoformat(v) if isinstance(v, str) else v).isoformat()
    except ValueError:
        raise OnlineStoreError(f"column {column}: {v!r} is not an ISO date") from None


def _key_type(v: Any, column: str) -> str:
    if v is None:
        raise OnlineStoreError(f"key column {column} is null in a row: it cannot be stored")
    if isinstance(v, dt.datetime):
        return "timestamp"
    if isinstance(v, dt.date):
        return "date"
    kind = _KEY_TYPES.get(type(v))
    if kind is None:
        raise OnlineStoreError(
            f"key column {column}: a {type(v).__name__} value cannot be a key (use strings, "
            "integers, floats, booleans, dates or timestamps)"
        )
    return kind


def _normalized(v: Any, kind: str) -> Any:
    """`v` (e.g. from a request's JSON) as a value of the stored key type `kind`; raises
    ValueError/TypeError when it cannot be one (such a key matches nothing)."""
    if kind == "str":
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise TypeError(v)
        return str(v)
    if kind == "int":
        if isinstance(v, bool) or isinstance(v, float) and not v.is_integer():
            raise TypeError(v)
        return int(v.strip()) if isinstance(v, str) else int(v)
    if kind == "float":
        if isinstance(v, bool):
            raise TypeError(v)
        f = float(v)
        return None if math.isnan(f) else f
    if kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        raise TypeError(v)
    if kind == "date":
        d = v if isinstance(v, dt.date) else dt.date.fromisoformat(v)
        return encode_value(d.date() if isinstance(d, dt.datetime) else d)
    # timestamp: an ISO string (a naive one taken as UTC, as stored) or a datetime
    t = v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)
    return encode_value(t if t.tzinfo else t.replace(tzinfo=dt.UTC))


def _key_text(values: list[Any]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


class SqliteOnlineStore:
    """The online store in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Open the store at `path`, creating the file (and its folder) and tables if missing.
        A file there that is not a lakeloop online store raises OnlineStoreError naming it."""
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._keys: dict[str, tuple[list[str], list[str]]] = {}  # pipeline -> (columns, types)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OnlineStoreError(
                f"online store {self.path}: cannot create its folder: {e}"
            ) from e
        try:
            self._create()
        except sqlite3.Error as e:
            self.close()
            raise OnlineStoreError(
                f"online store {self.path} is not a usable SQLite database ({e}): move the "
                "file away (materialize writes a new one) or set serving.online_store.path"
            ) from None

    def _create(self) -> None:
        con = self._con()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version}, this lakeloop reads 1")
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")
        if version == 0:
            con.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def _con(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: transactions are explicit)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    def _key_spec(self, pipeline: str) -> tuple[list[str], list[str]] | None:
        spec = self._keys.get(pipeline)
        if spec is None:
            r = (
                self._con()
                .execute(
                    "SELECT key_columns, key_types FROM online_pipelines WHERE pipeline = ?",
                    (pipeline,),
                )
                .fetchone()
            )
            if r is None:
                return None
            spec = self._keys[pipeline] = (json.loads(r[0]), json.loads(r[1]))
        return spec

    def write(
        self,
        pipeline: str,
        key_columns: list[str],
        rows: Iterable[Mapping[str, Any]],
        ts_column: str = "feature_ts",
        date_column: str = "feature_date",
    ) -> int:
        """Upsert `rows` (feature rows as column -> value, each holding the `key_columns`,
        `ts_column` (a datetime, naive = UTC, or ISO string) and `date_column` (a date or ISO
        string)) of `pipeline` in one transaction; a row replaces the stored row of its key
        only when its (timestamp, date) is not older. Returns the rows inserted or replaced
        (an older row, skipped, is not counted). `rows` is consumed as a stream."""
        if not key_columns:
            raise OnlineStoreError(f"online store {self.path}: write needs the key columns")
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")  # the write lock now: no deadlock between writers
        except sqlite3.Error as e:
            raise OnlineStoreError(f"online store {self.path}: cannot start a write: {e}") from e
        try:
            params = self._params(con, pipeline, list(key_columns), rows, ts_column, date_column)
            cur = con.executemany(_UPSERT, params)
            written = max(cur.rowcount, 0)
            con.execute("COMMIT")
        except BaseException as e:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise OnlineStoreError(f"online store {self.path}: write failed: {e}") from e
            raise
        return written

    def _params(
        self,
        con: sqlite3.Connection,
        pipeline: str,
        key_columns: list[str],
        rows: Iterable[Mapping[str, Any]],
        ts_column: str,
        date_column: str,
    ) -> Iterator[tuple[str, str, int | None, str | None, str]]:
        it = iter(rows)
        first = next(it, None)
        if first is None:
            return iter(())
        missing = [c for c in (*key_columns, ts_column, date_column) if c not in first]
        if missing:
            raise OnlineStoreError(
                f"online store {self.path}: the rows of {pipeline} lack column(s) {missing} "
                f"(they have {sorted(first)})"
            )
        types = [_key_type(first[c], c) for c in key_columns]
        stored = con.execute(
            "SELECT key_columns, key_types FROM online_pipelines WHERE pipeline = ?", (pipeline,)
        ).fetchone()
        if stored is None:
            con.execute(
                "INSERT INTO online_pipelines VALUES (?, ?, ?)",
                (pipeline, json.dumps(key_columns), json.dumps(types)),
            )
        elif (json.loads(stored[0]), json.loads(stored[1])) != (key_columns, types):
            raise OnlineStoreError(
                f"online store {self.path}: pipeline {pipeline} is stored with key "
                f"{stored[0]} of types {stored[1]}, these rows have key {key_columns} of types "
                f"{types}: move the store file away to materialize the new key"
            )

        def one(row: Mapping[str, Any]) -> tuple[str, str, int | None, str | None, str]:
            key = [encode_value(row[c], c) for c in key_columns]
            if any(k is None for k in key):
                raise OnlineStoreError(
                    f"online store {self.path}: a row of {pipeline} has a null key {key_columns}"
                    f" = {key}: it cannot be stored"
                )
            stored_row = {c: encode_value(v, c) for c, v in row.items()}
            return (
                pipeline,
                _key_text(key),
                _ts_us(row[ts_column], ts_column),
                _iso_date(row[date_column], date_column),
                json.dumps(stored_row, ensure_ascii=False, separators=(",", ":")),
            )

        def gen() -> Iterator[tuple[str, str, int | None, str | None, str]]:
            yield one(first)
            for row in it:
                yield one(row)

        return gen()

    def get(self, pipeline: str, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        """The stored feature row of each key (a mapping holding every key column of the
        pipeline; other entries are ignored), in order; None for a key not in the store (also
        for a value that cannot be of the key column's type, e.g. "abc" for an integer key).
        Values are compared after conversion to the stored key types: "42" finds the integer
        key 42, 42 finds the string key "42". One SELECT for all the keys."""
        spec = self._key_spec(pipeline)
        if spec is None or not keys:
            return [None] * len(keys)
        columns, types = spec
        texts: list[str | None] = []
        for i, k in enumerate(keys):
            missing = [c for c in columns if c not in k]
            if missing:
                raise OnlineStoreError(
                    f"key {i} of pipeline {pipeline} lacks key column(s) {missing} (the key "
                    f"is {columns})"
                )
            try:
                values = [_normalized(k[c], t) for c, t in zip(columns, types, strict=True)]
                texts.append(_key_text(values))
            except (TypeError, ValueError):
                texts.append(None)
        wanted = sorted({t for t in texts if t is not None})
        try:
            found = dict(self._con().execute(_SELECT, (pipeline, json.dumps(wanted))).fetchall())
        except sqlite3.Error as e:
            raise OnlineStoreError(f"online store {self.path}: read failed: {e}") from e
        return [json.loads(found[t]) if t in found else None for t in texts]

    def count(self, pipeline: str) -> int:
        """The rows (entities) stored for `pipeline`."""
        return (
            self._con()
            .execute("SELECT count(*) FROM online_features WHERE pipeline = ?", (pipeline,))
            .fetchone()[0]
        )

    def close(self) -> None:
        """Close every thread's connection (a thread that uses the store again reopens)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for con in connections:
            con.close()

    def __enter__(self) -> SqliteOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(cfg: AppConfig) -> SqliteOnlineStore:
    """The online store of `cfg.serving.online_store` (its path resolved against the project
    root)."""
    settings = cfg.serving.online_store
    if settings.kind != "sqlite":  # the config admits only sqlite today
        raise OnlineStoreError(f"serving.online_store.kind {settings.kind!r} is not built in")
    return SqliteOnlineStore(cfg.path(settings.path))
