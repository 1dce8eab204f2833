import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.config import SpecError
from lakeloop.quality.rules import FAILED
from lakeloop.spec import CleaningSpec, Dedup
from lakeloop.transforms.cleaning import (
    FLAGS,
    SOURCE,
    WINNER,
    across_dates,
    cleaned,
    cleaning_stats,
    dedup_order,
    normalized,
    redecided,
    stored_changes,
    stored_rows,
)

SCHEMA = "id string, ts int, x double, c string, _failed_rules array<string>"


def _run(spark, rows, spec):
    df = normalized(spark.createDataFrame(rows, SCHEMA), spec)
    stats = cleaning_stats(df, spec).first().asDict()
    return cleaned(df, spec, stats), stats


def test_missing_values_fill_median_and_drop(spark):
    spec = CleaningSpec.model_validate(
        {"missing": {"x": {"strategy": "median"}, "c": {"strategy": "drop"}}}
    )
    out, stats = _run(
        spark,
        [
            ("a", 1, 1.0, "p", []),
            ("b", 1, None, "q", []),
            ("c", 1, 3.0, None, []),
            ("d", 1, 5.0, "r", []),
        ],
        spec,
    )
    assert stats["x__q0500"] == 3.0
    got = out.select("id", "x", FAILED)
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [
                ("a", 1.0, []),
                ("b", 3.0, []),
                ("c", 3.0, ["cleaning.missing_dropped(c)"]),
                ("d", 5.0, []),
            ],
            got.schema,
        ),
    )


def test_outliers_flag_or_clip_by_iqr(spark):
    rows = [(str(i), 1, float(v), "k", []) for i, v in enumerate([10, 11, 12, 13, 14, 1000])]
    flag = CleaningSpec.model_validate(
        {"outliers": {"x": {"method": "iqr", "k": 1.5, "action": "flag"}}}
    )
    out, _ = _run(spark, rows, flag)
    assert {r["id"]: r[FLAGS] for r in out.collect()}["5"] == ["outlier(x)"]
    assert out.where(F.size(FLAGS) > 0).count() == 1 and out.where("x = 1000").count() == 1
    clip = CleaningSpec.model_validate(
        {"outliers": {"x": {"method": "iqr", "k": 1.5, "action": "clip"}}}
    )
    out, stats = _run(spark, rows, clip)
    q1, q3 = stats["x__q0250"], stats["x__q0750"]
    assert out.where("id = '5'").first()["x"] == pytest.approx(q3 + 1.5 * (q3 - q1))


def test_dedup_keeps_latest_and_quarantines_the_rest(spark):
    spec = CleaningSpec.model_validate({"dedup": {"key": ["id"], "order_by": ["ts"]}})
    out, _ = _run(
        spark,
        [
            ("a", 1, 1.0, "x", []),
            ("a", 3, 3.0, "x", []),
            ("a", 2, 2.0, "x", []),
            ("b", 1, 1.0, "x", []),
        ],
        spec,
    )
    got = out.select("id", "ts", FAILED)
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [
                ("a", 3, []),
                ("a", 2, ["cleaning.superseded(id)"]),
                ("a", 1, ["cleaning.superseded(id)"]),
                ("b", 1, []),
            ],
            got.schema,
        ),
    )


def test_normalize_strings(spark):
    spec = CleaningSpec.model_validate({"normalize": {"c": ["trim", "lower"]}})
    df = normalized(spark.createDataFrame([("a", 1, 1.0, "  GoOd ", [])], SCHEMA), spec)
    assert df.first()["c"] == "good"


def test_unknown_column_is_a_clear_error(spark):
    spec = CleaningSpec.model_validate({"missing": {"nope": {"strategy": "drop"}}})
    with pytest.raises(SpecError, match=r"^cleaning.missing.nope: no such column"):
        normalized(spark.createDataFrame([("a", 1, 1.0, "x", [])], SCHEMA), spec)


# --- de-duplication across dates -------------------------------------------------------------

D1, D3, D5 = dt.date(2026, 1, 1), dt.date(2026, 1, 3), dt.date(2026, 1, 5)
ROWS = "id string, ts int, x double, _ingest_date date, _failed_rules array<string>"
DEDUP = Dedup(key=["id"], order_by=["ts"])
LATER = "cleaning.superseded(id): a later row ingested "


def _stored(spark, silver, quarantine):
    s = spark.createDataFrame(silver, "id string, ts int, x double, _ingest_date date")
    q = spark.createDataFrame(quarantine, ROWS)
    return s, q


def test_dedup_order_puts_ingest_date_first_unless_named():
    assert dedup_order(DEDUP) == ["_ingest_date", "ts"]
    named = Dedup(key=["id"], order_by=["ts", "_ingest_date"])
    assert dedup_order(named) == ["ts", "_ingest_date"]


def test_a_later_date_supersedes_and_the_reason_names_the_winning_date(spark):
    """D3's rows against stored D1 and D5 rows: a key's latest row by (_ingest_date, ts) wins,
    whatever its ts; D3's losing row says which date won, its winning row supersedes D1's."""
    day = spark.createDataFrame(
        [
            ("a", 1, 3.0, D3, []),  # a: D5 holds a later row
            ("b", 1, 3.0, D3, []),  # b: supersedes D1's row (a smaller ts: arrival decides)
            ("c", 1, 3.0, D3, ["cleaning.superseded(id)"]),  # lost within D3: no say
            ("c", 2, 3.1, D3, []),  # c: only in D3
        ],
        ROWS,
    )
    silver, quarantine = _stored(
        spark,
        [("a", 0, 5.0, D5), ("b", 9, 1.0, D1)],
        [("c", 5, 1.0, D1, [LATER + "2026-01-05"])],  # c of D1 lost to a D5 row that went
    )
    decided = across_dates(day, stored_rows(silver, quarantine, DEDUP, day), DEDUP).cache()
    got = decided.where(F.col(SOURCE) == "date").select("id", "ts", FAILED)
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [
                ("a", 1, [LATER + "2026-01-05"]),
                ("b", 1, []),
                ("c", 1, ["cleaning.superseded(id)"]),
                ("c", 2, []),
            ],
            got.schema,
        ),
    )
    changes = stored_changes(decided, DEDUP).select("id", "_ingest_date", "_change")
    assertDataFrameEqual(
        changes,
        spark.createDataFrame(
            [("b", D1, "to_quarantine"), ("c", D1, "new_winner")], changes.schema
        ),
    )
    # D1's partition rewritten: b moves to quarantine, c's reason now names D3
    kept, staying, lost = redecided(
        silver.where("_ingest_date = '2026-01-01'"), quarantine, decided, DEDUP
    )
    assert kept.count() == 0 and staying.count() == 0
    assertDataFrameEqual(
        lost.select("id", "_ingest_date", FAILED),
        spark.createDataFrame(
            [("b", D1, [LATER + "2026-01-03"]), ("c", D1, [LATER + "2026-01-03"])],
            "id string, _ingest_date date, _failed_rules array<string>",
        ),
    )


def test_a_superseded_row_comes_back_when_its_winner_goes(spark):
    """D5 is re-validated without key a (its bronze changed): D1's row of a, superseded by D5's,
    returns to silver; rows of other keys and other failures stay where they are."""
    day = spark.createDataFrame([("z", 1, 1.0, D5, [])], ROWS)
    silver, quarantine = _stored(
        spark,
        [("b", 1, 1.0, D1)],
        [
            ("a", 1, 1.0, D1, [LATER + "2026-01-05"]),
            ("a", 0, 1.0, D1, ["cleaning.superseded(id)"]),  # lost within D1: stays
            ("q", 0, None, D1, ["expect_column_values_to_not_be_null(x)"]),
        ],
    )
    decided = across_dates(day, stored_rows(silver, quarantine, DEDUP, day), DEDUP)
    changes = stored_changes(decided, DEDUP).select("id", "_change")
    assertDataFrameEqual(changes, spark.createDataFrame([("a", "to_silver")], changes.schema))
    kept, staying, lost = redecided(silver, quarantine, decided, DEDUP)
    assert sorted(r["id"] for r in kept.collect()) == ["a", "b"]
    assert sorted((r["id"], r["ts"]) for r in staying.collect()) == [("a", 0), ("q", 0)]
    assert lost.count() == 0
    assert kept.columns == silver.columns


def test_across_dates_without_stored_rows_changes_nothing(spark):
    day = spark.createDataFrame([("a", 1, 1.0, D3, []), ("b", 1, 1.0, D3, ["r"])], ROWS)
    empty = spark.createDataFrame([], day.schema)
    decided = across_dates(day, stored_rows(empty, empty, DEDUP, day), DEDUP)
    assertDataFrameEqual(decided.drop(SOURCE, WINNER), day)
    assert stored_changes(decided, DEDUP).count() == 0
