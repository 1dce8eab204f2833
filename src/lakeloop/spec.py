"""The pipeline spec: one YAML file per use case under conf/pipelines/<name>.yaml.

It declares the sources (file globs with format and explicit schema; Kafka topic and value
schema), the table names, and the later stages (expectations, features, label, model, schedule,
monitoring). Everything is checked before any I/O: table names must be plain `schema.table`
identifiers and every path must resolve under the lakehouse root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lakeloop import uris
from lakeloop.config import (
    AppConfig,
    ConfigError,
    Strict,
    check_no_literal_secrets,
    format_validation_error,
    parse_yaml,
    read_yaml,
)

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
ColumnType = Literal["string", "int", "long", "double", "boolean", "date", "timestamp"]


def check_zone(name: str) -> str:
    """`name` when it is an IANA time zone name; ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone {name!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin, "
            "America/New_York)"
        ) from None
    return name


def _ident(v: str, what: str = "name") -> str:
    if not IDENT.match(v):
        raise ValueError(f"{what} {v!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return v


def _key(v: str | list[str]) -> str | list[str]:
    """A key as written: one column (`zipcode`) or several (`[region, vendor]`)."""
    cols = [v] if isinstance(v, str) else list(v)
    if not cols:
        raise ValueError("a key needs at least one column")
    for c in cols:
        _ident(c, "key column")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise ValueError(f"key column(s) {dup} listed twice")
    return v


# A key of one column or a composite key of several, e.g. `key: zipcode`, `key: [region, vendor]`.
Key = Annotated[str | list[str], AfterValidator(_key)]


def key_columns(key: str | list[str]) -> list[str]:
    """The columns of a key as a list (a one-column key is written as a plain name)."""
    return [key] if isinstance(key, str) else list(key)


class Keyed(Strict):
    """A model whose `key` field (a `Key`: one column or several) its subclass declares where
    it belongs among its fields; `key_columns` lists the columns."""

    @property
    def key_columns(self) -> list[str]:
        return key_columns(self.key)  # type: ignore[attr-defined]


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v: str) -> dt.timedelta:
    """`90s`, `30m`, `2h`, `7d` -> a timedelta (ValueError otherwise)."""
    m = _DURATION.match(v)
    if not m or int(m.group(1)) == 0:
        raise ValueError(
            f"duration {v!r}: write a positive whole number and a unit s, m, h or d (e.g. 2h)"
        )
    return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def sql_idents(sql: str) -> set[str]:
    """The identifiers in a SQL expression outside string literals: a superset of the columns
    it reads (function names and keywords are in it too)."""
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", " ", sql)
    found = re.findall(r"`([^`]+)`|\b([A-Za-z_][A-Za-z0-9_]*)\b", text)
    return {quoted or bare for quoted, bare in found}


# The default range of a timestamp/date column: min <= value < max (a value outside it, e.g.
# epoch milliseconds read as seconds, is a malformed record, never stored).
TIME_MIN = dt.date(1970, 1, 1)
TIME_MAX = dt.date(2200, 1, 1)
# Letters of Spark's datetime patterns that can parse (week-based Y w u W e c cannot, Spark 3+).
_PATTERN_LETTERS = frozenset("GyDMLdQqEFahKkHmsSVzOXxZ")
_PATTERN_DOC = "https://spark.apache.org/docs/latest/sql-ref-datetime-pattern.html"


def check_datetime_pattern(pattern: str) -> str:
    """`pattern` when every letter outside quotes is one of Spark's parsing pattern letters."""
    if not pattern.strip():
        raise ValueError("format is empty")
    unquoted = re.sub(r"'[^']*'?", "", pattern)  # 'T', 'at', '' are literal text
    bad = sorted({ch for ch in unquoted if ch.isalpha() and ch not in _PATTERN_LETTERS})
    if bad:
        raise ValueError(
            f"format {pattern!r}: {', '.join(bad)}: not a Spark datetime pattern letter "
            f"(week-based ones cannot parse; quote literal text, e.g. 'T'): see {_PATTERN_DOC}"
        )
    return pattern


class Column(Strict):
    """A column of a source schema. A timestamp/date value is parsed by the column's `format`
    (a Spark datetime pattern, e.g. `dd/MM/yyyy HH:mm`; timestamp and date columns) or `unit`
    (`s`, `ms`, `us`: the value is a number since the Unix epoch; timestamp columns), or,
    without either, as an ISO-8601 string. A plain number in a timestamp/date column without
    `unit`/`format` is malformed (its unit is unknown). A value that does not parse, or lies
    outside `min` <= value < `max` (dates; default 1970-01-01 .. 2200-01-01, UTC for
    timestamps), makes the record malformed with a reason naming the column and value."""

    name: str
    type: ColumnType
    nullable: bool = True
    format: str | None = None
    unit: Literal["s", "ms", "us"] | None = None
    min: dt.date | None = None
    max: dt.date | None = None

    _name = field_validator("name")(lambda cls, v: _ident(v, "column name"))
    _format = field_validator("format")(
        lambda cls, v: v if v is None else check_datetime_pattern(v)
    )

    @model_validator(mode="after")
    def _time_options(self) -> Column:
        temporal = self.type in ("timestamp", "date")
        if self.unit and self.format:
            raise ValueError(
                f"column {self.name}: give either unit (an epoch number) or format (a "
                "pattern), not both"
            )
        if self.unit and self.type != "timestamp":
            raise ValueError(
                f"column {self.name}: unit is only for timestamp columns (this one is "
                f"{self.type}{'; use format' if temporal else ''})"
            )
        for key in ("format", "min", "max"):
            if getattr(self, key) is not None and not temporal:
                raise ValueError(
                    f"column {self.name}: {key} is only for timestamp and date columns (this "
                    f"one is {self.type})"
                )
        if temporal and self.time_range[0] >= self.time_range[1]:
            lo, hi = self.time_range
            raise ValueError(f"column {self.name}: min {lo} must be before max {hi}")
        return self

    @property
    def time_range(self) -> tuple[dt.date, dt.date]:
        """[min, max) of a timestamp/date value (the column's, or 1970-01-01 .. 2200-01-01)."""
        return self.min or TIME_MIN, self.max or TIME_MAX


class FileSource(Strict):
    """Files landing under the lakehouse root, read by `ingest_files --date D` from `glob`
    (with `{date}`) into a bronze Delta table, parsed with the declared `schema`; a record that
    does not fit it is kept as malformed with the reason, never dropped."""

    name: str
    table: str = Field(description="key in `tables` of the bronze table this source feeds")
    glob: str = Field(description="relative to the lakehouse root; {date} is the run date")
    format: Literal["csv", "json"]
    options: dict[str, str | bool | int] = Field(default_factory=dict)
    columns: list[Column] = Field(alias="schema", min_length=1)

    _name = field_validator("name")(lambda cls, v: _ident(v, "source name"))

    @field_validator("glob")
    @classmethod
    def _glob(cls, v: str) -> str:
        placeholders = set(re.findall(r"{([^}]*)}", v))
        if placeholders - {"date"}:
            raise ValueError(
                f"only the {{date}} placeholder is allowed, got {sorted(placeholders)}"
            )
        if Path(v).is_absolute() or uris.scheme(v):
            raise ValueError(f"glob {v!r} must be relative to the lakehouse root")
        return v


class KafkaSource(Strict):
    """A Kafka topic read by `ingest_kafka` exactly once into a bronze Delta table (offsets
    checkpointed with the data); a message whose value does not parse against `value_schema`
    goes to `dead_letter_table` with the reason."""

    name: str
    table: str
    dead_letter_table: str
    topic: str
    bootstrap_servers: str | None = None  # default: kafka.bootstrap_servers of the config
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    fail_on_data_loss: bool = True
    max_offsets_per_trigger: int | None = Field(None, ge=1)
    value_format: Literal["json"] = "json"
    value_schema: list[Column] = Field(min_length=1)
    event_time_field: str | None = None
    checkpoint: str | None = None  # default: _checkpoints/<pipeline>/<source> under the lakehouse
    # A broker that does not answer for this long fails the run (bounded; re-running is safe).
    broker_timeout_s: float = Field(30.0, gt=0, le=600)
    # The topic as `lakeloop kafka create-topics` creates it (the broker never auto-creates):
    # partitions can only be increased later; retention_ms unset = the broker's default
    # (log.retention.*), -1 = keep forever.
    partitions: int = Field(1, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=32)
    retention_ms: int | None = Field(None, ge=-1)

    _name = field_validator("name")(lambda cls, v: _ident(v, "source name"))

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", v):
            raise ValueError(f"topic {v!r} is not a valid Kafka topic name")
        return v

    @model_validator(mode="after")
    def _event_time(self) -> KafkaSource:
        names = {c.name for c in self.value_schema}
        if self.event_time_field and self.event_time_field not in names:
            raise ValueError(f"event_time_field {self.event_time_field!r} is not in value_schema")
        return self


class MissingRule(Strict):
    """drop: the row goes to quarantine; fill: a constant; median: the batch's median."""

    strategy: Literal["drop", "fill", "median"]
    value: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _value(self) -> MissingRule:
        if self.strategy == "fill" and self.value is None:
            raise ValueError("strategy fill needs a value")
        return self


class OutlierRule(Strict):
    """Bounds from the batch: iqr -> [q1 - k*IQR, q3 + k*IQR]; quantile -> [q(lower), q(upper)].
    clip moves values to the bounds; flag keeps them and adds `outlier(<column>)` to `_flags`."""

    method: Literal["iqr", "quantile"] = "iqr"
    k: float = Field(1.5, gt=0)
    lower: float = Field(0.01, ge=0, le=1)
    upper: float = Field(0.99, ge=0, le=1)
    action: Literal["clip", "flag"] = "flag"


class Dedup(Keyed):
    """Keep the latest row per key across the whole silver table (not just the run's date):
    ordered by `_ingest_date` first (unless `order_by` names it, then where it stands), then
    `order_by`, descending. The others go to quarantine of their own date as superseded,
    naming the date of the row kept; a corrected re-delivery days later replaces the
    original."""

    key: Key
    order_by: list[str] = Field(min_length=1)


class CleaningSpec(Strict):
    """Cleaning of the rows that passed the suite's row rules, before silver: string
    normalisation, missing values, outliers and de-duplication by key."""

    normalize: dict[str, list[Literal["trim", "lower", "upper"]]] = Field(default_factory=dict)
    missing: dict[str, MissingRule] = Field(default_factory=dict)
    outliers: dict[str, OutlierRule] = Field(default_factory=dict)
    dedup: Dedup | None = None


class Projection(Strict):
    """The columns of a table at its silver step, applied to the bronze rows before anything
    else in `validate` (so the suite, cleaning, dedup, silver and quarantine all see the
    projected names; bronze keeps the source's own names, e.g. a CSV's checked header). In
    order: `rename` (old -> new), then the derived `columns` (name -> Spark SQL over the renamed
    columns; prefer try_* functions: an expression that fails at run time fails the run), then
    `select` (keep only these data columns) or `drop`. Lineage columns (`_ingest_date`, ...)
    always stay."""

    rename: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict)
    select: list[str] | None = None
    drop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> Projection:
        for old, new in self.rename.items():
            _ident(old, "rename: column")
            _ident(new, "rename: new name")
        for name in self.columns:
            _ident(name, "columns: derived column")
        if self.select is not None and self.drop:
            raise ValueError("give select (columns to keep) or drop (columns to remove), not both")
        targets = list(self.rename.values())
        dup = sorted({c for c in targets if targets.count(c) > 1})
        if dup:
            raise ValueError(f"rename: several columns renamed to {dup}")
        return self

    def __bool__(self) -> bool:
        return bool(self.rename or self.columns or self.select is not None or self.drop)

    def apply(self, columns: list[str]) -> list[str]:
        """The data columns after the projection, from the data columns before it; ValueError
        naming the key when a column it names does not exist (derived names are trusted)."""
        unknown = [f"rename.{c}" for c in self.rename if c not in columns]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: no such column (there are {columns})")
        out = [self.rename.get(c, c) for c in columns]
        clash = sorted({c for c in out if out.count(c) > 1} | (set(self.columns) & set(out)))
        if clash:
            raise ValueError(
                f"column(s) {clash} would exist twice after rename/columns: rename or drop one"
            )
        out += list(self.columns)
        keep = self.select if self.select is not None else [c for c in out if c not in self.drop]
        listed = self.select if self.select is not None else self.drop
        key = "select" if self.select is not None else "drop"
        unknown = [c for c in listed if c not in out]
        if unknown:
            raise ValueError(f"{key}: {unknown}: no such column after rename/columns ({out})")
        return [c for c in out if c in keep]


class ValidationSpec(Strict):
    """validate: bronze table -> projection -> GX suite gate -> cleaning -> silver +
    quarantine."""

    source: str  # key in `tables` (a bronze table)
    suite: str  # path under the expectations dir, e.g. houses/bronze_listings.json
    silver: str
    quarantine: str
    project: Projection = Projection()
    cleaning: CleaningSpec = CleaningSpec()

    @field_validator("suite")
    @classmethod
    def _suite(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts or not v.endswith(".json"):
            raise ValueError(f"suite {v!r} must be a .json path inside the expectations dir")
        return v


class AggregateJoin(Keyed):
    """Enrich each of the aggregate's source events with `columns` of another table, joined on
    `key` as of the event: of that table's rows for the key with `time` <= the event's time,
    the latest by (`time`, *`order_by`) — e.g. a sale gets its listing's sqft as listed before
    it sold, never a later relisting (so a backfill gives what the daily run gave). `order_by`
    breaks ties between rows with the same `time` (by default the latest ingested, then the
    last in its file). An event with no such row gets nulls."""

    table: str
    key: Key
    columns: list[str] = Field(min_length=1)
    time: str  # the table's event time, e.g. listed_at
    order_by: list[str] = Field(default_factory=lambda: ["_ingest_date", "_source_position"])


class WindowAggregate(Keyed):
    """A feature aggregated per `key` over the `window_days` before each entity's timestamp,
    from another (silver) table: e.g. the 90-day median sale price per zipcode."""

    name: str
    source: str  # key in `tables`
    # column(s) shared by the source and the entity rows, e.g. zipcode or [region, vendor]
    key: Key
    event_time: str
    expr: str  # Spark SQL aggregate over the source's columns, e.g. percentile(sale_price, 0.5)
    window_days: int = Field(ge=1, le=3660)
    join: AggregateJoin | None = None

    _name = field_validator("name")(lambda cls, v: _ident(v, "feature name"))


class Lookup(Keyed):
    """An as-of lookup feature: each entity row gets `columns` of the latest row of another
    (silver) table with the same key whose `time` is at or before the entity's timestamp and
    at most `tolerance` older (e.g. the latest hourly reading of the entity's station, at most
    2h old). Never a row from after the entity's timestamp; none in the tolerance gives nulls.
    `order_by` breaks ties between rows with the same `time` (default: the latest ingested,
    then the last in its file). `entity_columns` are the entity's columns matched to `key` in
    order (default: the same names); they may be `features.columns`."""

    name: str  # names the lookup in messages (features.lookups[<name>])
    table: str  # key in `tables`
    key: Key  # the table's key column(s), e.g. station_id or [region, station]
    entity_columns: Key | None = None  # the entity's columns matched to `key` (default: same)
    time: str  # the table's time column (a timestamp), e.g. observed_at
    # the table's columns brought in: a list (same names) or feature name -> table column
    columns: (
        Annotated[list[str], Field(min_length=1)] | Annotated[dict[str, str], Field(min_length=1)]
    )
    tolerance: str  # e.g. 90m, 2h, 1d
    # ties between rows of the same `time`: the largest wins (default: latest ingested)
    order_by: list[str] = Field(default_factory=lambda: ["_ingest_date", "_source_position"])

    _name = field_validator("name")(lambda cls, v: _ident(v, "lookup name"))
    _tolerance = field_validator("tolerance")(lambda cls, v: (parse_duration(v), v)[1])

    @model_validator(mode="after")
    def _columns(self) -> Lookup:
        for name in self.features:
            _ident(name, "lookup feature name")
        if self.entity_columns is not None and len(key_columns(self.entity_columns)) != len(
            self.key_columns
        ):
            raise ValueError(
                f"entity_columns {self.entity_columns} must match key {self.key} column for column"
            )
        return self

    @property
    def entity_key_columns(self) -> list[str]:
        return key_columns(self.entity_columns) if self.entity_columns else self.key_columns

    @property
    def features(self) -> dict[str, str]:
        """Feature name -> the lookup table's column."""
        cols = self.columns
        return dict(cols) if isinstance(cols, dict) else {c: c for c in cols}

    @property
    def tolerance_delta(self) -> dt.timedelta:
        return parse_duration(self.tolerance)


class FeaturesSpec(Strict):
    """build_features: one feature row per entity of `source` at its `timestamp` (feature_ts),
    with the entity's attributes, the SQL `columns`, windowed `aggregates` over other tables
    and as-of `lookups`, MERGEd into the feature table `table` (partitioned by feature_date)."""

    source: str  # key in `tables`: the silver entity table
    table: str  # key in `tables`: the feature table
    timestamp: str  # entity event time -> feature_ts
    columns: dict[str, str] = Field(default_factory=dict)  # name -> SQL expression
    aggregates: list[WindowAggregate] = Field(default_factory=list)
    lookups: list[Lookup] = Field(default_factory=list)
    backfill_chunk_days: int = Field(7, ge=1)

    @property
    def derived_columns(self) -> list[str]:
        """The feature table's columns that the spec adds to the entity's attributes."""
        return [
            *self.columns,
            *(a.name for a in self.aggregates),
            *(name for lk in self.lookups for name in lk.features),
        ]

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            _ident(k, "feature name")
        return v


# The training set's label-time column when the label lives on the entity's own table.
LABEL_TS = "label_ts"


class LabelSpec(Strict):
    """What the model learns to predict, per label row: `column`, or `expr` (Spark SQL over
    the label source's columns, e.g. `delay_minutes > 15` for a binary label, `log(price)`).

    The label source is a separate (silver) event table (sales: `id` and `event_time` are
    required), or the entity's own table (`features.source`: the target sits on the entity
    row; `id` defaults to the entity key, `event_time` to `features.timestamp`, and the
    training set's time column is `label_ts`). Then the columns the label reads (and a declared
    `event_time` other than the entity's timestamp) are left out of the feature table, so no
    feature can hold the answer.

    A null label (or a row without a label time, e.g. not delivered yet): `on_null: error`
    (the default) fails build_training_set naming how many and examples; `drop` leaves the
    row out, counted in the run log and the model report."""

    source: str  # key in `tables`
    table: str  # key in `tables`: the training set written by build_training_set
    column: str | None = None  # the label source's column holding the label
    expr: str | None = None  # or Spark SQL over the label source's columns
    name: str | None = None  # the label's column in the training set (default: column / label)
    # the label time (default on the entity's table: features.timestamp)
    event_time: str | None = None
    id: Key | None = None  # the label row's own key (e.g. sale_id)
    on_null: Literal["drop", "error"] = "error"  # a null label fails the run, or is left out
    lookback_days: int = Field(365, ge=1)

    @model_validator(mode="after")
    def _label(self) -> LabelSpec:
        if (self.column is None) == (self.expr is None):
            raise ValueError("give the label as column (a column name) or expr (SQL), one of them")
        for f in ("column", "name", "event_time"):
            if getattr(self, f) is not None:
                _ident(getattr(self, f), f"label.{f}")
        return self

    @property
    def label_name(self) -> str:
        return self.name or self.column or "label"


Scalar = str | int | float | bool

# the monitor's tables (keys in `tables`; defaults `metrics.<pipeline>_<kind>`), as in
# lakeloop.monitoring.tables
METRICS_TABLES = (
    "metrics_reference",
    "metrics_drift",
    "metrics_quality",
    "metrics_data_quality",
    "metrics_decisions",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")
CLASSIFICATION_METRICS = ("auc", "accuracy", "precision", "recall", "f1")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


class ModelFeatures(Strict):
    """The training set's columns the model uses. Numeric (and boolean) columns are assembled as
    they are; categorical (string) columns are indexed, and one-hot encoded for linear models.
    `impute` fills nulls of numeric columns with the training data's mean/median/mode; a null in
    any other numeric feature fails training with the column named."""

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    impute: dict[str, Literal["mean", "median", "mode"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _columns(self) -> ModelFeatures:
        cols = self.numeric + self.categorical
        for c in cols:
            _ident(c, "feature column")
        if not cols:
            raise ValueError("at least one numeric or categorical feature is needed")
        dup = sorted({c for c in cols if cols.count(c) > 1})
        if dup:
            raise ValueError(f"feature column(s) {dup} listed twice")
        bad = sorted(set(self.impute) - set(self.numeric))
        if bad:
            raise ValueError(f"impute: {bad} are not numeric features")
        return self


class EstimatorSpec(Strict):
    """An MLlib estimator: fixed `params` and a `grid` to tune (both by MLlib param name,
    e.g. regParam, maxDepth). Linear and logistic regression standardize the features inside
    MLlib (`standardization`, on unless params turn it off); trees need no scaling. `scale: true`
    adds an explicit StandardScaler stage (a full extra pass over the data on every fit)."""

    type: Literal["linear_regression", "logistic_regression", "random_forest", "gbt"]
    params: dict[str, Scalar] = Field(default_factory=dict)
    grid: dict[str, list[Scalar]] = Field(default_factory=dict)
    scale: bool = False

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for k, values in v.items():
            if not values:
                raise ValueError(f"grid {k}: give at least one value")
        return v


class TuningSpec(Strict):
    """CrossValidator over time-ordered folds of the training window: fold k holds the k-th
    slice of the training window by label time. The test window after it is never seen while
    tuning. `metric` picks the best grid point (default: rmse / auc)."""

    folds: int = Field(3, ge=2, le=20)
    metric: str | None = None
    seed: int = 7


class Bound(Strict):
    """A bound on a test metric: `min` <= value <= `max` (either may be left out)."""

    min: float | None = None
    max: float | None = None


class PromotionSpec(Strict):
    """The champion/challenger gate, on the held-out test window.

    A model passes the gate when it meets every `thresholds` bound AND its `metric` beats the
    naive baseline by at least `baseline_margin` (relative to the baseline's value: 0.0 =
    strictly better, 0.05 = 5% better). The naive baseline is a constant model of the training
    labels scored on the same window: for regression the training mean or the training median,
    whichever scores better on `metric`; for classification the majority class, with the
    training share of positives (the prior) as its probability (AUC 0.5). A model that does not
    beat it is never promoted, whatever the thresholds say.

    A model that passes replaces the champion only if its `metric` is also better than the
    champion's on the same window by at least `margin` (relative: 0.02 = 2% better). The
    champion is re-checked against the gate at every train, so tightened thresholds take effect
    at once: a champion that no longer passes is demoted (the `champion` alias is removed)."""

    metric: str | None = None
    margin: float = Field(0.0, ge=0)
    baseline_margin: float = Field(0.0, ge=0)
    thresholds: dict[str, Bound] = Field(default_factory=dict)


class ModelSpec(Strict):
    """train: an MLlib pipeline of the features and `estimator`, tuned by time-ordered
    cross-validation, scored on the last `test_days` of label time, registered in MLflow as
    `name`; `promotion` decides whether it becomes the champion that `predict` uses."""

    name: str  # the registered model's name in MLflow
    task: Literal["regression", "classification"]
    label: str | None = None  # default: label.column
    time_column: str | None = None  # default: label.event_time
    features: ModelFeatures
    estimator: EstimatorSpec
    tuning: TuningSpec = TuningSpec()
    test_days: int = Field(7, ge=1)  # the held-out window: the last N days of label time
    promotion: PromotionSpec = PromotionSpec()
    predictions: str  # key in `tables`: the batch predictions table

    @field_validator("name")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", v):
            raise ValueError(f"model name {v!r}: use letters, digits, _ . -")
        return v

    @model_validator(mode="after")
    def _metrics(self) -> ModelSpec:
        allowed = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        used = [("tuning.metric", self.tuning.metric), ("promotion.metric", self.promotion.metric)]
        used += [(f"promotion.thresholds.{m}", m) for m in self.promotion.thresholds]
        for where, m in used:
            if m is not None and m not in allowed:
                raise ValueError(f"{where}: {m!r} is not a {self.task} metric {allowed}")
        if self.task == "regression" and self.estimator.type == "logistic_regression":
            raise ValueError("logistic_regression is a classification estimator")
        if self.task == "classification" and self.estimator.type == "linear_regression":
            raise ValueError("linear_regression is a regression estimator")
        return self

    @property
    def default_metric(self) -> str:
        return "rmse" if self.task == "regression" else "auc"

    @property
    def tuning_metric(self) -> str:
        return self.tuning.metric or self.default_metric

    @property
    def promotion_metric(self) -> str:
        return self.promotion.metric or self.default_metric

    @property
    def metrics(self) -> tuple[str, ...]:
        return REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS

    @property
    def scaled(self) -> bool:
        return self.estimator.scale

    @property
    def linear(self) -> bool:
        return self.estimator.type in ("linear_regression", "logistic_regression")


class MonitoringSpec(Strict):
    """monitor: the day's scored entities against the champion's reference profile (its
    training set at the logged Delta version, profiled when it was trained): PSI per feature
    over the reference's decile buckets (categories: their frequencies, unseen ones in a bucket
    of their own), KS D and Wasserstein distance for numeric features, prediction drift, model
    quality from the labels matured since, and the data-quality trend. Results go to the
    `metrics_*` tables (default `metrics.<pipeline>_drift`, `_quality`, `_data_quality`,
    `_decisions`, `_reference`), replaced per run date."""

    features: list[str] | None = Field(
        None, description="features to watch for drift (default: all the model's features)"
    )
    psi_threshold: float = Field(
        0.2, gt=0, description="a feature whose PSI is above this has drifted"
    )
    quality_days: int = Field(
        60,
        ge=1,
        description="prediction dates up to this many days before the run date whose quality "
        "is recomputed from the labels matured by the run date",
    )
    trend_days: int = Field(30, ge=1, description="days of validate runs in the data-quality trend")


class DriftRule(Strict):
    """Retrain when PSI is above `psi` for any of `features` in at least `runs` of the last
    `of_last` monitor runs."""

    features: list[str] | None = None  # default: monitoring.features
    psi: float | None = Field(None, gt=0)  # default: monitoring.psi_threshold
    runs: int = Field(2, ge=1)
    of_last: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _window(self) -> DriftRule:
        if self.runs > self.of_last:
            raise ValueError(f"runs ({self.runs}) cannot exceed of_last ({self.of_last})")
        return self


class QualityRule(Strict):
    """Retrain when the champion's `metric` on matured labels (all its prediction dates within
    monitoring.quality_days, pooled) is worse than its own test score by more than `margin`
    (relative: 0.1 = 10% worse), once at least `min_labels` labels have matured."""

    metric: str | None = None  # default: model.promotion.metric
    margin: float = Field(0.1, ge=0)
    min_labels: int = Field(30, ge=1)


class RetrainSpec(Strict):
    """The retrain policy: each monitor run writes one decision row (`retrain_recommended`,
    the rule that fired, the numbers behind it) that orchestration turns into a training run.
    Rules are checked in order drift, quality, new_labels; none fires within `cooldown_days`
    after the last training run."""

    drift: DriftRule | None = DriftRule()
    quality: QualityRule | None = QualityRule()
    new_labels: int | None = Field(
        None, ge=1, description="retrain once at least this many labels arrived since training"
    )
    cooldown_days: int = Field(7, ge=0)


JOBS_LIFECYCLE = (
    "ingest_files",
    "ingest_kafka",
    "validate",
    "build_features",
    "predict",
    "monitor",
    "report",
    "materialize",
)
JOBS_TRAINING = ("build_training_set", "train")
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


class ServingSpec(Strict):
    """`lakeloop serve` and `materialize`: the online path. materialize writes the latest
    feature row per entity key from `features.table` to the online store (config
    serving.online_store); the server scores requests with the registry's `champion`, sends
    `challenger_fraction` of the entities to the `challenger` (sticky: a hash of the entity
    key), and appends every request and response to `log_table` (default
    `predictions.<pipeline>_online`), which the monitor reads."""

    challenger_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of entities (by a hash of the entity key) the challenger scores, "
        "when one exists; the champion scores the rest",
    )
    log_table: str = Field(
        "online_predictions",
        description="key in `tables` of the served requests' Delta table",
    )


def check_cron(v: str) -> str:
    """A cron expression (five fields) or one of Airflow's presets (@daily ...)."""
    v = v.strip()
    if v in _CRON_PRESETS:
        return v
    fields = v.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?LW#]+", f) for f in fields):
        raise ValueError(
            f"{v!r} is not a cron expression (5 fields, e.g. '0 2 * * *') or one of "
            f"{sorted(_CRON_PRESETS)}"
        )
    return v


class TrainingSchedule(Strict):
    """The training DAG (build_training_set -> train, with the promotion gate). It runs when the
    lifecycle's monitor recommends retraining (the pipeline's `retrain` Asset) and, when `cron`
    is set, also on that schedule."""

    cron: str | None = Field(None, description="also train on this schedule (cron or @preset)")
    _cron = field_validator("cron")(lambda cls, v: v if v is None else check_cron(v))


class ScheduleSpec(Strict):
    """The Airflow DAGs built from this spec (dags/lakeloop_dags.py): a daily lifecycle DAG
    `<name>_lifecycle` (ingest_files + ingest_kafka -> validate -> build_features -> predict ->
    monitor -> report -> retrain trigger; build_features -> materialize with `serving:`) and a
    training DAG `<name>_training`. Each run
    processes the day of its data interval (`cron` in the spec's time zone): the run for
    2026-01-01 starts after that day has ended. Every task spark-submits a job file, retries
    with exponential backoff and has a time limit; Spark tasks share one pool, so that few
    Spark JVMs run at once."""

    cron: str = Field("@daily", description="the lifecycle DAG's schedule (cron or @preset)")
    start_date: dt.date = Field(
        dt.date(2026, 1, 1), description="first logical date the scheduler may run"
    )
    catchup: bool = Field(False, description="let the scheduler run missed dates on its own")
    owner: str = "lakeloop"
    retries: int = Field(2, ge=0, le=20, description="retries of a failed task")
    retry_delay_s: int = Field(60, ge=1, description="first retry delay; doubles each retry")
    max_retry_delay_s: int = Field(900, ge=1)
    timeout_min: int = Field(60, ge=1, description="a task running longer than this fails")
    job_timeout_min: dict[str, int] = Field(
        default_factory=dict, description="per-job time limits (minutes), e.g. {train: 120}"
    )
    max_active_runs: int = Field(1, ge=1, description="lifecycle runs at once (dates in order)")
    tags: list[str] = Field(default_factory=list)
    training: TrainingSchedule = TrainingSchedule()

    _cron = field_validator("cron")(lambda cls, v: check_cron(v))

    @field_validator("job_timeout_min")
    @classmethod
    def _jobs(cls, v: dict[str, int]) -> dict[str, int]:
        known = (*JOBS_LIFECYCLE, *JOBS_TRAINING)
        bad = sorted(set(v) - set(known))
        if bad:
            raise ValueError(f"unknown job(s) {bad}; jobs are {list(known)}")
        if any(m < 1 for m in v.values()):
            raise ValueError("time limits are minutes >= 1")
        return v

    def timeout(self, job: str) -> dt.timedelta:
        return dt.timedelta(minutes=self.job_timeout_min.get(job, self.timeout_min))


class Sources(Strict):
    """Where the data comes from: file sources and Kafka sources."""

    files: list[FileSource] = Field(default_factory=list)
    kafka: list[KafkaSource] = Field(default_factory=list)


class PipelineSpec(Strict):
    """One use case: conf/pipelines/<name>.yaml. Sources feed bronze tables; `expectations`
    turn bronze into silver + quarantine; `features`, `label` and `model` build the feature
    table, the training set, the model and its batch predictions. Table names come only from
    `tables` (key -> `schema.table`)."""

    name: str
    description: str = ""
    entity: str
    entity_key: Key  # one column, or a composite key: [region, order_no]
    # IANA zone of every date derived from a timestamp (partitions, windows, cut-offs)
    timezone: str = "UTC"
    sources: Sources
    tables: dict[str, str]
    expectations: list[ValidationSpec] = Field(default_factory=list)
    features: FeaturesSpec | None = None
    label: LabelSpec | None = None
    model: ModelSpec | None = None
    monitoring: MonitoringSpec | None = None  # default (with a model): MonitoringSpec()
    retrain: RetrainSpec | None = None  # default (with a model): RetrainSpec()
    serving: ServingSpec | None = None  # the online path (`lakeloop serve`, `materialize`)
    # the Airflow DAGs (dags/lakeloop_dags.py); default: ScheduleSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    _name = field_validator("name", "entity")(lambda cls, v: _ident(v))
    _timezone = field_validator("timezone")(lambda cls, v: check_zone(v))

    @model_validator(mode="before")
    @classmethod
    def _monitoring_defaults(cls, data: Any) -> Any:
        """With a model: the metrics tables default to `metrics.<name>_<kind>`, and monitoring
        and the retrain policy to their defaults."""
        if not isinstance(data, dict) or not data.get("model") or not data.get("name"):
            return data
        data = dict(data)
        tables = dict(data.get("tables") or {})
        for key in METRICS_TABLES:
            tables.setdefault(key, f"metrics.{data['name']}_{key.removeprefix('metrics_')}")
        if isinstance(data.get("serving"), dict):
            log_key = data["serving"].get("log_table", "online_predictions")
            tables.setdefault(log_key, f"predictions.{data['name']}_online")
            tables.setdefault("metrics_online", f"metrics.{data['name']}_online")
        data["tables"] = tables
        if data.get("monitoring") is None:
            data["monitoring"] = {}
        if data.get("retrain") is None:
            data["retrain"] = {}
        return data

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: dict[str, str]) -> dict[str, str]:
        for key, name in v.items():
            _ident(key, "table key")
            if not TABLE_NAME.match(name):
                raise ValueError(f"table {key}: {name!r} is not a plain `schema.table` identifier")
        return v

    @model_validator(mode="after")
    def _references(self) -> PipelineSpec:
        refs = [(f"sources.files[{s.name}].table", s.table) for s in self.sources.files]
        for s in self.sources.kafka:
            refs += [
                (f"sources.kafka[{s.name}].table", s.table),
                (f"sources.kafka[{s.name}].dead_letter_table", s.dead_letter_table),
            ]
        for v in self.expectations:
            refs += [
                (f"expectations[{v.source}].{f}", getattr(v, f))
                for f in ("source", "silver", "quarantine")
            ]
        if self.features:
            refs += [
                ("features.source", self.features.source),
                ("features.table", self.features.table),
            ]
            for a in self.features.aggregates:
                refs.append((f"features.aggregates[{a.name}].source", a.source))
                if a.join:
                    refs.append((f"features.aggregates[{a.name}].join.table", a.join.table))
            for lk in self.features.lookups:
                refs.append((f"features.lookups[{lk.name}].table", lk.table))
        if self.label:
            refs += [("label.source", self.label.source), ("label.table", self.label.table)]
        if self.model:
            if self.label is None:
                raise ValueError("model needs `label` (the training set it learns from)")
            refs.append(("model.predictions", self.model.predictions))
        if self.serving:
            if self.model is None or self.features is None:
                raise ValueError("serving needs `model` and `features` (what it scores)")
            refs.append(("serving.log_table", self.serving.log_table))
        for where, key in refs:
            if key not in self.tables:
                raise ValueError(f"{where}: {key!r} is not a key of `tables`")
        if "run_log" not in self.tables:
            raise ValueError("tables.run_log is required")
        names = [s.name for s in self.sources.files] + [s.name for s in self.sources.kafka]
        if len(names) != len(set(names)):
            raise ValueError(f"source names must be unique, got {names}")
        return self

    @model_validator(mode="after")
    def _monitored_features(self) -> PipelineSpec:
        """retrain.drift.features are watched features (monitoring.features, default the
        model's); the quality rule's metric is one of the task's. monitoring.features may name
        any feature-table column (checked when train profiles the training set)."""
        if self.model is None:
            if self.monitoring is not None or self.retrain is not None:
                raise ValueError("monitoring and retrain need a `model` to monitor")
            return self
        watched = self.watched_features
        if self.retrain.drift and self.retrain.drift.features:
            unknown = [c for c in self.retrain.drift.features if c not in watched]
            if unknown:
                raise ValueError(
                    f"retrain.drift.features: {unknown} are not watched features {watched} "
                    "(monitoring.features, default: the model's features)"
                )
        q = self.retrain.quality
        if q and q.metric and q.metric not in self.model.metrics:
            raise ValueError(
                f"retrain.quality.metric: {q.metric!r} is not a {self.model.task} metric "
                f"{self.model.metrics}"
            )
        return self

    @property
    def watched_features(self) -> list[str]:
        """The features the monitor compares with the reference: monitoring.features, default
        every model feature."""
        m = self.model
        return list(
            (self.monitoring and self.monitoring.features)
            or [*m.features.numeric, *m.features.categorical]
        )

    @model_validator(mode="after")
    def _projections(self) -> PipelineSpec:
        """Each expectations entry's projection names columns its bronze table has."""
        for i, v in enumerate(self.expectations):
            bronze = self._bronze_columns(v.source)
            if v.project and bronze is not None:
                try:
                    v.project.apply(bronze)
                except ValueError as e:
                    raise ValueError(f"expectations[{i}].project: {e}") from None
        return self

    @model_validator(mode="after")
    def _label_where_it_lives(self) -> PipelineSpec:
        lab = self.label
        if lab is None:
            return self
        if not self.label_on_entity:
            missing = [f"label.{f}" for f in ("id", "event_time") if getattr(lab, f) is None]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)}: required when the label source ({lab.source}) is not "
                    f"the entity's own table (features.source); on the entity's table they "
                    "default to the entity key and features.timestamp"
                )
        return self

    @model_validator(mode="after")
    def _label_feature_clash(self) -> PipelineSpec:
        """A label-side column that is also a feature-table column would appear twice in the
        training set: caught here, before any data is read."""
        if self.label is None or self.features is None:
            return self
        f = self.features
        entity = self.silver_columns(f.source)
        excluded = self.label_excluded_features
        feature_cols = {*f.derived_columns, "feature_ts", "feature_date"}
        feature_cols |= {c for c in entity or () if not c.startswith("_") and c not in excluded}
        feature_cols -= set(self.entity_keys)
        lab = self.label
        keys = {f"label.id ({c})": c for c in self.label_ids}
        time = "label.event_time" if lab.event_time == self.label_time_column else "label time"
        keys[f"{time} ({self.label_time_column})"] = self.label_time_column
        name = "label.name" if lab.name else "label.column" if lab.column else "label"
        keys[f"{name} ({lab.label_name})"] = lab.label_name
        clash = [k for k, c in keys.items() if c in feature_cols]
        if clash:
            where = self.source_names(lab.source)
            raise ValueError(
                f"{', '.join(clash)}: also a column of the feature table {f.table!r} (from "
                f"features.source {f.source!r} or features.columns/aggregates/lookups), so the "
                "training set would hold it twice. Rename it on one side: label.name, the "
                f"field in the label source's schema ({where or 'its source'}, or its "
                "expectations `project.rename`) or the feature column; only the entity key may "
                "be on both sides"
            )
        return self

    @model_validator(mode="after")
    def _no_label_in_features(self) -> PipelineSpec:
        lab = self.label
        if lab is not None and self.model is not None:
            used = [*self.model.features.numeric, *self.model.features.categorical]
            answer = {self.label.label_name, *self.label_reads} - set(self.entity_keys)
            leak = [c for c in used if c in answer]
            if leak:
                raise ValueError(
                    f"model.features: {leak} is the label or what it is computed from "
                    f"(label.{'expr' if lab.expr else 'column'}); a model cannot use it as a "
                    "feature"
                )
        return self

    @property
    def entity_keys(self) -> list[str]:
        return key_columns(self.entity_key)

    @property
    def label_on_entity(self) -> bool:
        """The label is a column of the entity's own table (features.source)."""
        return bool(self.label and self.features and self.label.source == self.features.source)

    @property
    def label_ids(self) -> list[str]:
        """The label row's key columns (default on the entity's table: the entity key)."""
        lab = self.label
        return key_columns(lab.id) if lab.id is not None else self.entity_keys

    @property
    def label_time_source(self) -> str:
        """The label source's column holding the label time."""
        return self.label.event_time or self.features.timestamp

    @property
    def label_time_column(self) -> str:
        """The label time's column in the training set."""
        return LABEL_TS if self.label_on_entity else self.label.event_time

    @property
    def label_reads(self) -> set[str]:
        """The label source's columns the label is computed from (for `expr`: the identifiers
        of the expression that are columns of the source, or all of them when unknown)."""
        lab = self.label
        if lab.column is not None:
            return {lab.column}
        idents = sql_idents(lab.expr)
        known = self.silver_columns(lab.source)
        return idents & known if known is not None else idents

    @property
    def label_excluded_features(self) -> set[str]:
        """Entity columns left out of the feature table because the label lives on the
        entity's table and they hold the answer: what the label reads, and a declared label
        time other than the entity's timestamp (the outcome's time is not known before it)."""
        if not self.label_on_entity:
            return set()
        out = set(self.label_reads)
        if self.label.event_time and self.label.event_time != self.features.timestamp:
            out.add(self.label.event_time)
        return out - {*self.entity_keys, self.features.timestamp}

    def _feeding(self, silver_key: str) -> list[FileSource | KafkaSource]:
        """The sources whose bronze table the validation of `silver_key` reads."""
        bronze = {v.source for v in self.expectations if v.silver == silver_key}
        return [s for s in (*self.sources.files, *self.sources.kafka) if s.table in bronze]

    def _bronze_columns(self, bronze_key: str) -> list[str] | None:
        """The data columns of a bronze table per its sources' schemas (None: not known)."""
        cols: dict[str, None] = {}
        for s in (*self.sources.files, *self.sources.kafka):
            if s.table == bronze_key:
                schema = s.columns if isinstance(s, FileSource) else s.value_schema
                cols.update({c.name: None for c in schema})
        return list(cols) if cols else None

    def silver_columns(self, silver_key: str) -> set[str] | None:
        """The data columns of a silver table per its sources' schemas and the projection of
        its expectations entry (None: not known)."""
        cols: set[str] = set()
        found = False
        for v in self.expectations:
            bronze = self._bronze_columns(v.source) if v.silver == silver_key else None
            if bronze is None:
                continue
            found = True
            try:
                cols |= set(v.project.apply(bronze) if v.project else bronze)
            except ValueError:  # reported by _projections
                cols |= set(bronze)
        return cols if found else None

    def source_names(self, silver_key: str) -> str:
        kinds = {FileSource: ("files", "schema"), KafkaSource: ("kafka", "value_schema")}
        return ", ".join(
            f"sources.{kinds[type(s)][0]}[{s.name}].{kinds[type(s)][1]}"
            for s in self._feeding(silver_key)
        )

    @property
    def model_label(self) -> str:
        return self.model.label or self.label.label_name

    @property
    def model_time(self) -> str:
        return self.model.time_column or self.label_time_column

    def validation_for(self, source: str) -> ValidationSpec | None:
        return next((v for v in self.expectations if v.source == source), None)

    def table(self, key: str) -> str:
        try:
            return self.tables[key]
        except KeyError:
            raise ConfigError(f"pipeline {self.name}: no table {key!r} in `tables`") from None


class Pipeline:
    """A validated spec bound to a config: resolves tables, paths and checkpoints."""

    def __init__(self, cfg: AppConfig, spec: PipelineSpec, source_file: Path | None = None):
        self.cfg = cfg
        self.spec = spec
        self.source_file = source_file
        self._check_paths()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def root(self) -> str:
        """The lakehouse root URI (a local absolute path, file:, hdfs:, s3a: ...)."""
        return self.cfg.lakehouse_root

    @property
    def local_root(self) -> Path:
        """The root as a driver-disk path, for the tools that only work locally (the example
        data generator, the in-process demo); a clear error on a remote lakehouse."""
        try:
            return uris.local_path(self.root)
        except ValueError:
            raise ConfigError(
                f"pipeline {self.name}: the lakehouse root {self.root} is not on the local file "
                "system; this command works on a local lakehouse only"
            ) from None

    def uri(self, *parts: str) -> str:
        """A location under the lakehouse root."""
        return uris.join(self.root, *parts)

    def table_path(self, key: str) -> str:
        schema, table = self.spec.table(key).split(".")
        return self.uri(schema, table)

    def reports_uri(self, *parts: str) -> str:
        """`<root>/reports/<pipeline>/...`: the run's human-readable outputs."""
        return self.uri("reports", self.name, *parts)

    def file_glob(self, source: FileSource, date: dt.date) -> str:
        return self.uri(source.glob.format(date=date.isoformat()))

    def local_file_glob(self, source: FileSource, date: dt.date) -> Path:
        """`file_glob` on a local lakehouse, as a driver-disk path (the example generators)."""
        return self.local_root / source.glob.format(date=date.isoformat())

    def checkpoint(self, source: KafkaSource) -> str:
        rel = source.checkpoint or f"_checkpoints/{self.name}/{source.name}"
        return self.uri(rel)

    def spec_hash(self) -> str:
        return hashlib.sha256(self.spec.model_dump_json(by_alias=True).encode()).hexdigest()[:16]

    def _check_paths(self) -> None:
        sample = dt.date(2000, 1, 1)
        for s in self.spec.sources.files:
            pattern = self.file_glob(s, sample)
            folder = uris.parent(pattern) if any(c in pattern for c in "*?[{") else pattern
            if not uris.within(self.root, folder) or ".." in s.glob.split("/"):
                raise ConfigError(
                    f"pipeline {self.name}: sources.files[{s.name}].glob {s.glob!r} points "
                    f"outside the lakehouse root {self.root}"
                )
        for s in self.spec.sources.kafka:
            rel = s.checkpoint or ""
            if not uris.within(self.root, self.checkpoint(s)) or ".." in rel.split("/"):
                raise ConfigError(
                    f"pipeline {self.name}: sources.kafka[{s.name}].checkpoint points outside "
                    f"the lakehouse root {self.root}"
                )


def is_remote_spec(name_or_path: str) -> bool:
    """A spec given as a URI on distributed storage (`hdfs://…/houses.yaml`): it is read
    through the Spark session's Hadoop FileSystem (`load_pipeline_text`)."""
    return not uris.is_local(name_or_path)


def load_pipeline(cfg: AppConfig, name_or_path: str) -> Pipeline:
    """Load conf/pipelines/<name>.yaml (or a local path or `file:` URI) and validate it
    against the config."""
    path = uris.local_path(name_or_path) if uris.scheme(name_or_path) else Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if not IDENT.match(name_or_path):
            raise ConfigError(f"pipeline name {name_or_path!r} is not a plain identifier")
        path = cfg.path(cfg.pipelines_dir) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"pipeline spec {path} does not exist")
    return _validated(cfg, read_yaml(path), str(path), path)


def load_pipeline_text(cfg: AppConfig, text: str, source: str) -> Pipeline:
    """A spec read elsewhere (from a URI), validated as `load_pipeline` does."""
    return _validated(cfg, parse_yaml(text, source), source, None)


def _validated(cfg: AppConfig, data: dict[str, Any], source: str, path: Path | None) -> Pipeline:
    check_no_literal_secrets(data, source)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as e:
        origins = {k: source for k in data}
        raise ConfigError(format_validation_error(e, origins, f"pipeline spec {source}")) from None
    return Pipeline(cfg, spec, path)
