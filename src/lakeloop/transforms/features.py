"""Feature transforms: per-entity SQL features and windowed aggregates over event time.

An entity row (a listing) gets its features as of its own timestamp `feature_ts`. Windowed
aggregates (e.g. the 90-day median sale price per zipcode) only see source events dated in
[feature_date - window_days, feature_date), strictly before the entity's day, so a feature
never contains information from its own future."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeloop.spec import FeaturesSpec, WindowAggregate

FEATURE_TS = "feature_ts"
FEATURE_DATE = "feature_date"


def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = sorted(set(columns) - set(df.columns))
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found (has {sorted(df.columns)})")


def entity_features(entities: DataFrame, spec: FeaturesSpec, entity_key: str) -> DataFrame:
    """Entity attributes (non-underscore columns) + the spec's SQL features, keyed by
    (entity_key, feature_ts)."""
    _require(entities, [entity_key, spec.timestamp], "entity rows")
    attrs = [c for c in entities.columns if not c.startswith("_")]
    out = entities.select(*attrs, F.col(spec.timestamp).alias(FEATURE_TS))
    out = out.withColumn(FEATURE_DATE, F.to_date(FEATURE_TS))
    return out.withColumns({name: F.expr(sql) for name, sql in spec.columns.items()})


def enriched_events(
    events: DataFrame, enrich: DataFrame | None, key: str | None, columns: list[str]
) -> DataFrame:
    """Events with extra columns from another table (e.g. a sale with its listing's sqft)."""
    if enrich is None or key is None:
        return events
    _require(enrich, [key, *columns], "aggregate join table")
    one = latest_per_key(enrich.select(key, *columns), [key], [key])
    return events.join(one, on=key, how="left")


def window_aggregate(keys: DataFrame, events: DataFrame, agg: WindowAggregate) -> DataFrame:
    """(agg.key, feature_date) -> agg.expr over events with event date in
    [feature_date - window_days, feature_date)."""
    _require(keys, [agg.key, FEATURE_DATE], "entity keys")
    _require(events, [agg.key, agg.event_time], f"aggregate {agg.name} source")
    ev = events.withColumn("_event_date", F.to_date(agg.event_time))
    k = keys.select(agg.key, FEATURE_DATE).distinct()
    cond = (
        (k[agg.key] == ev[agg.key])
        & (ev["_event_date"] >= F.date_sub(k[FEATURE_DATE], agg.window_days))
        & (ev["_event_date"] < k[FEATURE_DATE])
    )
    joined = k.join(ev, cond, "left").drop(ev[agg.key])
    value: Column = F.expr(agg.expr)
    if agg.expr.strip().lower().startswith("count("):
        # left join: a key with no events has one all-null event row; count real events only
        value = F.count(ev[agg.event_time])
    return joined.groupBy(agg.key, FEATURE_DATE).agg(value.alias(agg.name))


def with_aggregates(
    features: DataFrame, aggregates: list[DataFrame], specs: list[WindowAggregate]
) -> DataFrame:
    out = features
    for df, spec in zip(aggregates, specs, strict=True):
        out = out.join(df, on=[spec.key, FEATURE_DATE], how="left")
    return out


def latest_per_key(df: DataFrame, keys: list[str], order_by: list[str]) -> DataFrame:
    """One row per key: the latest by `order_by` (descending). MERGE needs unique keys."""
    w = Window.partitionBy(*keys).orderBy(*[F.col(c).desc_nulls_last() for c in order_by])
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")
