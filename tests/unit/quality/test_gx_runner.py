import logging
from pathlib import Path

import pytest

from lakeloop.quality.gx_runner import TableValidation, validate_table_level


def _suite(*expectations, name="houses_table"):
    return {"name": name, "meta": {"version": "1"}, "expectations": list(expectations)}


def _e(t, blocking=None, **kw):
    e = {"type": t, "kwargs": kw}
    if blocking is not None:
        e["meta"] = {"blocking": blocking}
    return e


@pytest.fixture(scope="module")
def df(spark):
    rows = [(i, float(i) * 10.0, "a" if i % 2 else "b") for i in range(1, 11)]
    return spark.createDataFrame(rows, "id INT, price DOUBLE, zone STRING")


PASSING = _suite(
    _e("expect_table_row_count_to_be_between", blocking=True, min_value=5, max_value=20),
    _e("expect_column_mean_to_be_between", column="price", min_value=50, max_value=60),
    _e("expect_column_median_to_be_between", column="price", min_value=50, max_value=60),
    _e("expect_column_max_to_be_between", column="price", min_value=100, max_value=100),
    _e("expect_column_proportion_of_unique_values_to_be_between", column="id", min_value=1.0),
    _e("expect_table_columns_to_match_set", column_set=["id", "price", "zone"]),
)


def test_passing_suite_and_data_docs(df, tmp_path):
    docs = tmp_path / "docs"
    result = validate_table_level(df, PASSING, docs, run_name="run-1")

    assert isinstance(result, TableValidation)
    assert result.suite_name == "houses_table"
    assert result.success
    assert result.blocking_failures == []
    assert [o.type for o in result.outcomes] == [e["type"] for e in PASSING["expectations"]]
    assert all(o.success for o in result.outcomes)
    by_type = {o.type: o for o in result.outcomes}
    assert by_type["expect_table_row_count_to_be_between"].blocking
    assert by_type["expect_table_row_count_to_be_between"].observed == "10"
    assert by_type["expect_column_mean_to_be_between"].observed == "55.0"
    assert by_type["expect_column_mean_to_be_between"].kwargs == {
        "column": "price",
        "min_value": 50,
        "max_value": 60,
    }
    assert not by_type["expect_column_mean_to_be_between"].blocking

    assert result.docs_index == docs.resolve() / "index.html"
    assert result.docs_index.is_file()
    assert "houses_table" in result.docs_index.read_text()
    assert (docs / "expectations" / "houses_table.html").is_file()
    assert list((docs / "validations" / "houses_table" / "run-1").rglob("*.html"))


def test_blocking_failure_reports_observed_value(df):
    suite = _suite(
        _e("expect_table_row_count_to_be_between", blocking=True, min_value=100, max_value=200),
        _e("expect_column_mean_to_be_between", column="price", min_value=0, max_value=1000),
    )
    result = validate_table_level(df, suite, None, run_name="run-2")

    assert not result.success
    assert [o.type for o in result.blocking_failures] == ["expect_table_row_count_to_be_between"]
    failure = result.blocking_failures[0]
    assert failure.observed == "10"
    assert failure.kwargs == {"min_value": 100, "max_value": 200}
    assert result.outcomes[1].success


def test_non_blocking_failure_fails_but_does_not_block(df):
    suite = _suite(
        _e("expect_column_max_to_be_between", blocking=False, column="price", max_value=50),
        _e("expect_table_columns_to_match_set", column_set=["id", "price"], exact_match=True),
        _e("expect_table_row_count_to_be_between", blocking=True, min_value=1),
    )
    result = validate_table_level(df, suite, None, run_name="run-3")

    assert not result.success
    assert result.blocking_failures == []
    assert [o.success for o in result.outcomes] == [False, False, True]
    assert result.outcomes[0].observed == "100.0"


def test_missing_column_is_a_failure_with_gx_error_as_observed(df, caplog):
    suite = _suite(_e("expect_column_mean_to_be_between", True, column="nope", min_value=0))
    with caplog.at_level(logging.WARNING, logger="lakeloop.quality.gx_runner"):
        result = validate_table_level(df, suite, None, run_name="run-4")

    assert not result.success
    (failure,) = result.blocking_failures
    assert failure.observed is not None and failure.observed.startswith("error:")
    assert "nope" in failure.observed
    assert "nope" in caplog.text


@pytest.mark.parametrize(
    "expectation, named",
    [
        (_e("expect_table_to_be_delightful", min_value=1), "expect_table_to_be_delightful"),
        (_e("expect_column_mean_to_be_between", min_value=1), "expect_column_mean_to_be_between"),
        (
            _e("expect_column_max_to_be_between", "yes", column="id"),
            "expect_column_max_to_be_between",
        ),
    ],
    ids=["unknown-type", "bad-kwargs", "non-bool-blocking"],
)
def test_unusable_expectation_is_a_value_error_naming_it(df, expectation, named):
    suite = _suite(_e("expect_table_row_count_to_be_between", min_value=1), expectation)
    with pytest.raises(ValueError, match=named):
        validate_table_level(df, suite, None, run_name="run-5")


def test_no_docs_dir_writes_nothing_and_repeat_calls_work(df, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = _suite(_e("expect_table_row_count_to_be_between", min_value=1), name="again")
    first = validate_table_level(df, suite, None, run_name="same")
    second = validate_table_level(df, suite, None, run_name="same")

    assert first.docs_index is None and second.docs_index is None
    assert first.success and second.success
    assert list(Path(tmp_path).iterdir()) == []
    assert not df.is_cached  # GX's persist() of the batch is undone


def test_repeat_calls_add_runs_to_the_same_docs_site(df, tmp_path):
    suite = _suite(_e("expect_table_row_count_to_be_between", min_value=1), name="twice")
    validate_table_level(df, suite, tmp_path, run_name="same")
    result = validate_table_level(df, suite, tmp_path, run_name="same")

    assert result.docs_index is not None and "twice" in result.docs_index.read_text()
    pages = sorted((tmp_path / "validations" / "twice" / "same").rglob("*.html"))
    assert len(pages) == 2  # the first run's page is kept (and linked from the index)
    index = result.docs_index.read_text()
    assert all(p.parent.name in index for p in pages)


def test_a_suite_without_table_level_expectations_skips_gx(df, tmp_path, monkeypatch):
    import great_expectations as gx

    def no_gx(*_a, **_k):
        raise AssertionError("GX must not be called for an empty table-level suite")

    monkeypatch.setattr(gx, "get_context", no_gx)
    result = validate_table_level(df, _suite(), tmp_path / "docs", "empty-run")
    assert result == TableValidation(suite_name="houses_table", success=True)
    assert result.outcomes == [] and result.blocking_failures == []
    assert not (tmp_path / "docs").exists()
