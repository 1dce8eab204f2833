import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.config import SpecError
from lakeloop.quality.rules import FAILED
from lakeloop.spec import CleaningSpec
from lakeloop.transforms.cleaning import FLAGS, cleaned, cleaning_stats, normalized

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
