"""As-of lookup features: each entity row gets columns of another table's latest row for its
key as of the entity's own timestamp (e.g. the latest hourly reading of the entity's station at
the entity's event time, at most 2 hours old).

Point-in-time correct by construction: the join is `training.as_of_join`, the technique of the
training set (both sides unioned, a running `last` over a window per key), so a row stamped after
the entity's time is never taken, not even one from the same hour. A spec that does not fit the
data raises `SpecError` naming the spec key, e.g. `features.lookups[weather].columns: unknown
column 'tmp'`, when the DataFrame is built (before any data is read)."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame

from lakeloop.config import SpecError
from lakeloop.spec import Lookup
from lakeloop.transforms.features import require_columns
from lakeloop.transforms.training import TIMESTAMP_TYPES, as_of_join, matched_keys

log = logging.getLogger(__name__)


def _require_timestamp(df: DataFrame, column: str, key: str, what: str) -> None:
    dtype = df.schema[column].dataType
    if not isinstance(dtype, TIMESTAMP_TYPES):
        raise SpecError(
            f"{key}: column {column!r} of {what} must be a timestamp, not "
            f"{dtype.simpleString()} (declare it `type: timestamp` in the table's schema, or "
            "derive one in a projection)"
        )


def lookup_features(
    entities: DataFrame,
    table: DataFrame,
    lookup: Lookup,
    entity_time: str,
    where: str | None = None,
) -> DataFrame:
    """`entities` with the lookup's feature columns added (`lookup.features`: feature name ->
    column of `table`), taken from the table's latest row with the same key (the entities'
    `lookup.entity_key_columns` equal to the table's `lookup.key_columns`, every column) and
    `entity_time - lookup.tolerance <= lookup.time <= entity_time`. Rows with equal `time` are
    ordered by `lookup.order_by` descending (by default the latest ingested, then the last in
    its file), then by the feature values, so the choice is deterministic. No such row (or a
    null in a key column or the entity time) gives nulls.

    Every entity row is kept exactly once, duplicates included; the output has the entity
    columns, then the features in the spec's order. `where` is the spec key used in errors
    (default `features.lookups[<name>]`). Key columns of integer types of different widths
    match; any other type difference, an unknown column, a feature name that is already an
    entity column or a time column that is not a timestamp is a `SpecError`."""
    where = where or f"features.lookups[{lookup.name}]"
    features = lookup.features
    require_columns(
        table,
        [
            *[(f"{where}.key", c) for c in lookup.key_columns],
            (f"{where}.time", lookup.time),
            *[(f"{where}.order_by", c) for c in lookup.order_by],
            *[(f"{where}.columns", c) for c in features.values()],
        ],
        f"the lookup table ({lookup.table})",
    )
    entity_key = f"{where}.entity_columns" if lookup.entity_columns else f"{where}.key"
    require_columns(
        entities,
        [
            *[(entity_key, c) for c in lookup.entity_key_columns],
            (f"{where} (the entity time)", entity_time),
        ],
        "the entity rows",
    )
    clash = [name for name in features if name in entities.columns]
    if clash:
        raise SpecError(
            f"{where}.columns: feature name(s) {clash} are columns of the entity rows already "
            "(name the feature another way: `columns: {new_name: column}`)"
        )
    _require_timestamp(table, lookup.time, f"{where}.time", f"the lookup table ({lookup.table})")
    _require_timestamp(entities, entity_time, f"{where} (the entity time)", "the entity rows")
    try:
        entity_keys, table_keys = matched_keys(
            entities,
            table,
            lookup.entity_key_columns,
            lookup.key_columns,
            names=("the entity rows", f"the lookup table ({lookup.table})"),
            what="key column",
        )
    except ValueError as e:
        raise SpecError(f"{entity_key}: {e}") from None
    log.debug(
        "lookup %s: %s of %s by %s as of %s, tolerance %s",
        lookup.name,
        sorted(features.values()),
        lookup.table,
        lookup.key_columns,
        entity_time,
        lookup.tolerance,
    )
    return as_of_join(
        entities,
        table,
        entity_keys,
        table_keys,
        entity_time,
        lookup.time,
        lookup.tolerance_delta,
        features,
        order_by=lookup.order_by,
    )
