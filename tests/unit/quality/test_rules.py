import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakeloop.quality.rules import (
    FAILED,
    SuiteError,
    check_columns,
    compile_suite,
    rule_failure_counts,
    with_rule_failures,
)
from tests.conftest import ROOT


def _suite(*expectations):
    return compile_suite(
        {"name": "t", "meta": {"version": "3"}, "expectations": list(expectations)}
    )


def _e(t, **kw):
    return {"type": t, "kwargs": kw}


def test_row_rules_all_evaluated_in_one_projection(spark):
    suite = _suite(
        _e("expect_column_values_to_not_be_null", column="id"),
        _e("expect_column_values_to_be_between", column="n", min_value=0, max_value=10),
        _e("expect_column_values_to_be_in_set", column="c", value_set=["a", "b"]),
        _e("expect_column_values_to_match_regex", column="id", regex="^k[0-9]$"),
        _e("expect_column_values_to_be_unique", column="u"),
        _e("expect_table_row_count_to_be_between", min_value=1),
    )
    assert [r.type for r in suite.row_rules][0] == "expect_column_values_to_not_be_null"
    assert [e["type"] for e in suite.table_expectations] == ["expect_table_row_count_to_be_between"]
    df = spark.createDataFrame(
        [
            ("k1", 5, "a", 1),
            ("k2", 11, "a", 2),
            (None, None, None, 3),
            ("x", 0, "z", 3),
        ],
        "id string, n int, c string, u int",
    )
    out = with_rule_failures(df, suite.row_rules).select("id", FAILED)
    expected = spark.createDataFrame(
        [
            ("k1", []),
            ("k2", ["expect_column_values_to_be_between(n)"]),
            (
                None,
                ["expect_column_values_to_not_be_null(id)", "expect_column_values_to_be_unique(u)"],
            ),
            (
                "x",
                [
                    "expect_column_values_to_be_in_set(c)",
                    "expect_column_values_to_match_regex(id)",
                    "expect_column_values_to_be_unique(u)",
                ],
            ),
        ],
        out.schema,
    )
    assertDataFrameEqual(out, expected)
    counts = rule_failure_counts(with_rule_failures(df, suite.row_rules))
    assert {r["rule"]: r["failed_rows"] for r in counts.collect()}[
        "expect_column_values_to_be_unique(u)"
    ] == 2


def test_strict_bounds(spark):
    suite = _suite(
        _e(
            "expect_column_values_to_be_between",
            column="n",
            min_value=0,
            max_value=10,
            strict_min=True,
        )
    )
    df = spark.createDataFrame([(0,), (10,)], "n int")
    out = with_rule_failures(df, suite.row_rules).where(F.size(FAILED) > 0)
    assert [r["n"] for r in out.collect()] == [0]


def test_unknown_row_level_type_is_an_error_naming_it():
    with pytest.raises(SuiteError, match="expect_column_values_to_be_json_parseable"):
        _suite(_e("expect_column_values_to_be_json_parseable", column="x"))


def test_missing_column_in_table_is_named(spark):
    suite = _suite(_e("expect_column_values_to_not_be_null", column="nope"))
    with pytest.raises(SuiteError, match=r"\['nope'\] are not in table bronze.t"):
        check_columns(suite, ["a"], "bronze.t")


def test_version_changes_with_content():
    a = _suite(_e("expect_column_values_to_not_be_null", column="a"))
    b = _suite(_e("expect_column_values_to_not_be_null", column="b"))
    assert a.version.startswith("3+") and a.version != b.version


def test_committed_suites_compile():
    from lakeloop.quality.rules import load_suite

    for path in (ROOT / "expectations").rglob("*.json"):
        suite = load_suite(path)
        assert suite.row_rules and suite.table_expectations, path
