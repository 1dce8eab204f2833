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
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from lakeloop.config import (
    AppConfig,
    ConfigError,
    Strict,
    check_no_literal_secrets,
    format_validation_error,
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
        if Path(v).is_absolute():
            raise ValueError(f"glob {v!r} must be relative to the lakehouse root")
        return v


class KafkaSource(Strict):
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


class Dedup(Strict):
    """Keep the latest row per key across the whole silver table (not just the run's date):
    ordered by `_ingest_date` first (unless `order_by` names it, then where it stands), then
    `order_by`, descending. The others go to quarantine of their own date as superseded,
    naming the date of the row kept; a corrected re-delivery days later replaces the
    original."""

    key: list[str] = Field(min_length=1)
    order_by: list[str] = Field(min_length=1)


class CleaningSpec(Strict):
    normalize: dict[str, list[Literal["trim", "lower", "upper"]]] = Field(default_factory=dict)
    missing: dict[str, MissingRule] = Field(default_factory=dict)
    outliers: dict[str, OutlierRule] = Field(default_factory=dict)
    dedup: Dedup | None = None


class ValidationSpec(Strict):
    """validate: bronze table -> GX suite gate -> cleaning -> silver + quarantine."""

    source: str  # key in `tables` (a bronze table)
    suite: str  # path under the expectations dir, e.g. houses/bronze_listings.json
    silver: str
    quarantine: str
    cleaning: CleaningSpec = CleaningSpec()

    @field_validator("suite")
    @classmethod
    def _suite(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts or not v.endswith(".json"):
            raise ValueError(f"suite {v!r} must be a .json path inside the expectations dir")
        return v


class AggregateJoin(Strict):
    """Enrich each of the aggregate's source events with `columns` of another table, joined on
    `key` as of the event: of that table's rows for the key with `time` <= the event's time,
    the latest by (`time`, *`order_by`) — e.g. a sale gets its listing's sqft as listed before
    it sold, never a later relisting (so a backfill gives what the daily run gave). `order_by`
    breaks ties between rows with the same `time` (by default the latest ingested, then the
    last in its file). An event with no such row gets nulls."""

    table: str
    key: str
    columns: list[str] = Field(min_length=1)
    time: str  # the table's event time, e.g. listed_at
    order_by: list[str] = Field(default_factory=lambda: ["_ingest_date", "_source_position"])


class WindowAggregate(Strict):
    """A feature aggregated per `key` over the `window_days` before each entity's timestamp,
    from another (silver) table: e.g. the 90-day median sale price per zipcode."""

    name: str
    source: str  # key in `tables`
    key: str  # column shared by the source and the entity rows, e.g. zipcode
    event_time: str
    expr: str  # Spark SQL aggregate over the source's columns, e.g. percentile(sale_price, 0.5)
    window_days: int = Field(ge=1, le=3660)
    join: AggregateJoin | None = None

    _name = field_validator("name")(lambda cls, v: _ident(v, "feature name"))


class FeaturesSpec(Strict):
    source: str  # key in `tables`: the silver entity table
    table: str  # key in `tables`: the feature table
    timestamp: str  # entity event time -> feature_ts
    columns: dict[str, str] = Field(default_factory=dict)  # name -> SQL expression
    aggregates: list[WindowAggregate] = Field(default_factory=list)
    backfill_chunk_days: int = Field(7, ge=1)

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            _ident(k, "feature name")
        return v


class LabelSpec(Strict):
    source: str  # key in `tables`: the silver label events
    table: str  # key in `tables`: the training set written by build_training_set
    column: str
    event_time: str
    id: str  # the label event's own key (e.g. sale_id)
    lookback_days: int = Field(365, ge=1)


Scalar = str | int | float | bool

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


class Sources(Strict):
    files: list[FileSource] = Field(default_factory=list)
    kafka: list[KafkaSource] = Field(default_factory=list)


class PipelineSpec(Strict):
    name: str
    description: str = ""
    entity: str
    entity_key: str
    # IANA zone of every date derived from a timestamp (partitions, windows, cut-offs)
    timezone: str = "UTC"
    sources: Sources
    tables: dict[str, str]
    expectations: list[ValidationSpec] = Field(default_factory=list)
    features: FeaturesSpec | None = None
    label: LabelSpec | None = None
    model: ModelSpec | None = None
    # Placeholders for the later stages; their own schemas arrive with those stages.
    schedule: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None

    _name = field_validator("name", "entity", "entity_key")(lambda cls, v: _ident(v))
    _timezone = field_validator("timezone")(lambda cls, v: check_zone(v))

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
        if self.label:
            refs += [("label.source", self.label.source), ("label.table", self.label.table)]
        if self.model:
            if self.label is None:
                raise ValueError("model needs `label` (the training set it learns from)")
            refs.append(("model.predictions", self.model.predictions))
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
    def _label_feature_clash(self) -> PipelineSpec:
        """A label column that is also a feature-table column would appear twice in the
        training set: caught here, before any data is read."""
        if self.label is None or self.features is None:
            return self
        f = self.features
        entity = self.silver_columns(f.source)
        feature_cols = {*f.columns, *(a.name for a in f.aggregates), "feature_ts", "feature_date"}
        feature_cols |= {c for c in entity or () if not c.startswith("_")}
        feature_cols.discard(self.entity_key)
        lab = self.label
        keys = {"label.id": lab.id, "label.event_time": lab.event_time, "label.column": lab.column}
        clash = [f"{k} ({c})" for k, c in keys.items() if c in feature_cols]
        if clash:
            where = self.source_names(lab.source)
            raise ValueError(
                f"{', '.join(clash)}: also a column of the feature table {f.table!r} (from "
                f"features.source {f.source!r} or features.columns/aggregates), so the training "
                "set would hold it twice. Rename it on one side: the field in the label "
                f"source's schema ({where or 'its source'}) or the feature column; only the "
                "entity key may be on both sides"
            )
        return self

    def _feeding(self, silver_key: str) -> list[FileSource | KafkaSource]:
        """The sources whose bronze table the validation of `silver_key` reads."""
        bronze = {v.source for v in self.expectations if v.silver == silver_key}
        return [s for s in (*self.sources.files, *self.sources.kafka) if s.table in bronze]

    def silver_columns(self, silver_key: str) -> set[str] | None:
        """The data columns of a silver table per its sources' schemas (None: not known)."""
        feeding = self._feeding(silver_key)
        if not feeding:
            return None
        cols: set[str] = set()
        for s in feeding:
            cols |= {c.name for c in (s.columns if isinstance(s, FileSource) else s.value_schema)}
        return cols

    def source_names(self, silver_key: str) -> str:
        kinds = {FileSource: ("files", "schema"), KafkaSource: ("kafka", "value_schema")}
        return ", ".join(
            f"sources.{kinds[type(s)][0]}[{s.name}].{kinds[type(s)][1]}"
            for s in self._feeding(silver_key)
        )

    @property
    def model_label(self) -> str:
        return self.model.label or self.label.column

    @property
    def model_time(self) -> str:
        return self.model.time_column or self.label.event_time

    def validation_for(self, source: str) -> ValidationSpec | None:
        return next((v for v in self.expectations if v.source == source), None)

    def table(self, key: str) -> str:
        try:
            return self.tables[key]
        except KeyError:
            raise ConfigError(f"pipeline {self.name}: no table {key!r} in `tables`") from None


def _within(root: Path, p: Path) -> bool:
    try:
        p.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


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
    def root(self) -> Path:
        return self.cfg.lakehouse_root

    def table_path(self, key: str) -> str:
        schema, table = self.spec.table(key).split(".")
        return str(self.root / schema / table)

    def file_glob(self, source: FileSource, date: dt.date) -> str:
        return str(self.root / source.glob.format(date=date.isoformat()))

    def checkpoint(self, source: KafkaSource) -> str:
        rel = source.checkpoint or f"_checkpoints/{self.name}/{source.name}"
        return str(self.root / rel)

    def spec_hash(self) -> str:
        return hashlib.sha256(self.spec.model_dump_json(by_alias=True).encode()).hexdigest()[:16]

    def _check_paths(self) -> None:
        sample = dt.date(2000, 1, 1)
        for s in self.spec.sources.files:
            p = Path(self.file_glob(s, sample))
            if not _within(self.root, p.parent if "*" in p.name else p):
                raise ConfigError(
                    f"pipeline {self.name}: sources.files[{s.name}].glob {s.glob!r} points "
                    f"outside the lakehouse root {self.root}"
                )
        for s in self.spec.sources.kafka:
            if not _within(self.root, Path(self.checkpoint(s))):
                raise ConfigError(
                    f"pipeline {self.name}: sources.kafka[{s.name}].checkpoint points outside "
                    f"the lakehouse root {self.root}"
                )


def load_pipeline(cfg: AppConfig, name_or_path: str) -> Pipeline:
    """Load conf/pipelines/<name>.yaml (or a path) and validate it against the config."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if not IDENT.match(name_or_path):
            raise ConfigError(f"pipeline name {name_or_path!r} is not a plain identifier")
        path = cfg.path(cfg.pipelines_dir) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"pipeline spec {path} does not exist")
    data = read_yaml(path)
    check_no_literal_secrets(data, str(path))
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as e:
        origins = {k: str(path) for k in data}
        raise ConfigError(format_validation_error(e, origins, f"pipeline spec {path}")) from None
    return Pipeline(cfg, spec, path)
