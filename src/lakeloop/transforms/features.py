"""Feature transforms: per-entity SQL features and windowed aggregates over event time.

An entity row (a listing) gets its features as of its own timestamp `feature_ts`; its
`feature_date` is the local date of `feature_ts` in the pipeline's time zone. Windowed
aggregates (e.g. the 90-day median sale price per zipcode) only see source events whose local
date is in [feature_date - window_days, feature_date), strictly before the entity's day, so a
feature never contains information from its own future, and a day's boundary is midnight in
the pipeline's zone.

A spec that does not fit the data (an unknown column, a SQL expression Spark cannot resolve)
raises `SpecError` naming the spec key, e.g. `features.columns.total_rooms: unknown column
`bedroomz``. Classic PySpark analyses a DataFrame when it is built, so this happens before any
data is read."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from pyspark.errors import AnalysisException
from pyspark.logger import PySparkLogger
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeloop.config import SpecError
from lakeloop.spec import AggregateJoin, FeaturesSpec, WindowAggregate, key_columns, sql_idents
from lakeloop.timezones import UTC, local_date
from lakeloop.transforms.training import as_of_join, matched_keys

FEATURE_TS = "feature_ts"
FEATURE_DATE = "feature_date"
_QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def require_columns(df: DataFrame, wanted: list[tuple[str, str]], what: str) -> None:
    """Every (spec key, column) must name a column of `df`; else one SpecError naming them."""
    missing = [f"{key}: unknown column {col!r}" for key, col in wanted if col not in df.columns]
    if missing:
        raise SpecError(f"{'; '.join(missing)} (not in {what}, which has {sorted(df.columns)})")


def _problem(e: AnalysisException) -> str:
    params = e.getMessageParameters() or {}
    if (e.getCondition() or "").startswith("UNRESOLVED_COLUMN") and "objectName" in params:
        hint = f"; did you mean one of {params['proposal']}?" if params.get("proposal") else ""
        return f"unknown column {params['objectName']}{hint}"
    return str(e).strip().split("\n")[0][:500]


@contextmanager
def _analysis_errors_unlogged() -> Iterator[None]:
    """PySpark logs each AnalysisException with a query context, JVM stack included, to stderr
    as it converts it; where the error becomes a one-line SpecError that is only noise."""
    loggers = [PySparkLogger.getLogger(n) for n in _QUERY_CONTEXT_LOGGERS]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, before, strict=True):
            lg.disabled = was


def resolved_sql(where: str, sql: str, build: Callable[[Column], DataFrame]) -> DataFrame:
    """build(F.expr(sql)), with Spark's analysis error re-raised as a one-line SpecError."""
    try:
        with _analysis_errors_unlogged():
            return build(F.expr(sql))
    except AnalysisException as e:  # ParseException included
        raise SpecError(f"{where}: {_problem(e)} (in `{sql}`)") from e


def entity_features(
    entities: DataFrame,
    spec: FeaturesSpec,
    entity_key: str | list[str],
    zone: str = UTC,
    exclude: Collection[str] = (),
) -> DataFrame:
    """Entity attributes (non-underscore columns but `exclude`: the label's own columns when
    the label lives on the entity's table) + the spec's SQL features, keyed by
    (entity key columns, feature_ts); `feature_date` is the local date of feature_ts in
    `zone`."""
    keys = key_columns(entity_key)
    require_columns(
        entities,
        [*(("entity_key", k) for k in keys), ("features.timestamp", spec.timestamp)],
        "the entity rows (features.source)",
    )
    for name, sql in spec.columns.items():
        used = sorted(sql_idents(sql) & set(exclude))
        if used:
            raise SpecError(
                f"features.columns.{name}: reads {used}, what the label is computed from "
                "(the label lives on the entity's table): a feature cannot hold the answer"
            )
    attrs = [c for c in entities.columns if not c.startswith("_") and c not in exclude]
    out = entities.select(*attrs, F.col(spec.timestamp).alias(FEATURE_TS))
    out = out.withColumn(FEATURE_DATE, local_date(FEATURE_TS, zone))
    for name, sql in spec.columns.items():  # one at a time, to name the one that fails
        resolved_sql(f"features.columns.{name}", sql, out.select)
    return out.withColumns({name: F.expr(sql) for name, sql in spec.columns.items()})


def enriched_events(
    events: DataFrame,
    enrich: DataFrame | None,
    join: AggregateJoin | None,
    event_time: str,
    where: str = "features.aggregates[].join",
) -> DataFrame:
    """Events with `join.columns` of another table as of each event (e.g. a sale with its
    listing's sqft): of the rows for the event's key with `join.time` <= the event time, the
    latest by (`join.time`, *`join.order_by`); no such row gives nulls."""
    if enrich is None or join is None:
        return events
    by = join.key_columns
    require_columns(
        enrich,
        [
            *((f"{where}.key", c) for c in by),
            (f"{where}.time", join.time),
            *[(f"{where}.order_by", c) for c in join.order_by],
            *[(f"{where}.columns", c) for c in join.columns],
        ],
        f"the join table ({join.table})",
    )
    require_columns(events, [(f"{where}.key", c) for c in by], "the aggregate's source")
    clash = sorted(set(join.columns) & set(events.columns))
    if clash:
        raise SpecError(f"{where}.columns: {clash} are columns of the aggregate's source already")
    try:
        event_keys, table_keys = matched_keys(
            events,
            enrich,
            by,
            by,
            names=("the aggregate's source", f"the join table ({join.table})"),
            what="key column",
        )
    except ValueError as e:
        raise SpecError(f"{where}.key: {e}") from None
    # the as-of union + window of the training set: no range join, no row explosion
    return as_of_join(
        events,
        enrich,
        event_keys,
        table_keys,
        event_time,
        join.time,
        None,
        {c: c for c in join.columns},
        order_by=join.order_by,
    )


def window_aggregate(
    keys: DataFrame,
    events: DataFrame,
    agg: WindowAggregate,
    index: int | None = None,
    zone: str = UTC,
) -> DataFrame:
    """(agg.key, feature_date) -> agg.expr over the events whose local date in `zone` (the
    zone of feature_date) is in [feature_date - window_days, feature_date), evaluated as written (`count(*)`,
    `count(distinct x)`, `percentile_approx(...)`). A key with no events in its window gets
    what the expression gives over no rows: 0 for a count, null for most others."""
    where = f"features.aggregates[{agg.name if index is None else index}]"
    by = agg.key_columns
    require_columns(keys, [(f"{where}.key", c) for c in by], "the entity rows")
    require_columns(
        events,
        [*((f"{where}.key", c) for c in by), (f"{where}.event_time", agg.event_time)],
        f"the aggregate's source ({agg.source})",
    )
    ev = events.withColumn("_event_date", local_date(agg.event_time, zone))
    k = keys.select(*by, FEATURE_DATE).distinct()
    cond = (ev["_event_date"] >= F.date_sub(k[FEATURE_DATE], agg.window_days)) & (
        ev["_event_date"] < k[FEATURE_DATE]
    )
    for c in by:
        cond &= k[c] == ev[c]
    joined = k.join(ev, cond, "inner").drop(*[ev[c] for c in by])
    label = f"{where}.expr ({agg.name})"
    seen = resolved_sql(
        label,
        agg.expr,
        lambda c: joined.groupBy(*by, FEATURE_DATE).agg(
            c.alias(agg.name), F.lit(True).alias("_seen")
        ),
    )
    # the expression over no rows (one row: SQL's value of an aggregate over an empty table)
    empty = resolved_sql(label, agg.expr, lambda c: ev.where(F.lit(False)).agg(c.alias("_empty")))
    value = F.when(F.col("_seen").isNull(), F.col("_empty")).otherwise(F.col(agg.name))
    return (
        k.join(seen, [*by, FEATURE_DATE], "left")
        .crossJoin(F.broadcast(empty))
        .select(*by, FEATURE_DATE, value.alias(agg.name))
    )


def with_aggregates(
    features: DataFrame, aggregates: list[DataFrame], specs: list[WindowAggregate]
) -> DataFrame:
    out = features
    for df, spec in zip(aggregates, specs, strict=True):
        out = out.join(df, on=[*spec.key_columns, FEATURE_DATE], how="left")
    return out


def latest_per_key(df: DataFrame, keys: list[str], order_by: list[str]) -> DataFrame:
    """One row per key: the latest by `order_by` (descending). MERGE needs unique keys."""
    w = Window.partitionBy(*keys).orderBy(*[F.col(c).desc_nulls_last() for c in order_by])
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")
