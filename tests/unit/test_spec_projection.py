"""The spec pieces of issue 11 that need no data: keys, durations, projections, labels."""

import datetime as dt

import pytest
from pydantic import ValidationError

from lakeloop.spec import (
    LabelSpec,
    Lookup,
    Projection,
    WindowAggregate,
    key_columns,
    parse_duration,
    sql_idents,
)


def test_a_key_is_one_column_or_several():
    agg = dict(name="n", source="s", event_time="t", expr="count(*)", window_days=7)
    assert WindowAggregate(key="zip", **agg).key_columns == ["zip"]
    assert WindowAggregate(key=["region", "vendor"], **agg).key_columns == ["region", "vendor"]
    assert key_columns("a") == ["a"]
    for bad, msg in ((["a", "a"], "listed twice"), ([], "at least one"), (["a b"], "identifier")):
        with pytest.raises(ValidationError, match=msg):
            WindowAggregate(key=bad, **agg)


@pytest.mark.parametrize(
    "text,seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), (" 2 h ", 7200)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["2", "2 hours", "0h", "-1h", "1.5h", ""])
def test_bad_durations_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="positive whole number and a unit"):
        parse_duration(text)


def test_projection_order_is_rename_then_derive_then_select_or_drop():
    p = Projection(rename={"ts": "at"}, columns={"wet": "rain > 0"}, drop=["note"])
    assert p.apply(["ts", "rain", "note"]) == ["at", "rain", "wet"]
    keep = Projection(rename={"ts": "at"}, select=["at", "wet"], columns={"wet": "rain > 0"})
    assert keep.apply(["ts", "rain"]) == ["at", "wet"]
    assert not Projection() and Projection(drop=["x"])


@pytest.mark.parametrize(
    "kwargs,columns,msg",
    [
        ({"rename": {"tz": "at"}}, ["ts"], "rename.tz: no such column"),
        ({"drop": ["nope"]}, ["ts"], r"drop: \['nope'\]: no such column"),
        ({"select": ["ts", "x"]}, ["ts"], r"select: \['x'\]"),
        ({"rename": {"a": "b"}}, ["a", "b"], r"\['b'\] would exist twice"),
        ({"columns": {"a": "1"}}, ["a"], r"\['a'\] would exist twice"),
    ],
)
def test_projection_errors_name_the_key(kwargs, columns, msg):
    with pytest.raises(ValueError, match=msg):
        Projection(**kwargs).apply(columns)


def test_projection_refuses_select_with_drop_and_two_renames_to_one_name():
    with pytest.raises(ValidationError, match="not both"):
        Projection(select=["a"], drop=["b"])
    with pytest.raises(ValidationError, match="several columns renamed"):
        Projection(rename={"a": "c", "b": "c"})


def test_sql_idents_skip_string_literals():
    assert sql_idents("delay_minutes > 15 AND note = 'late_flag' OR `odd col` IS NULL") == {
        "delay_minutes",
        "AND",
        "note",
        "OR",
        "odd col",
        "IS",
        "NULL",
    }


def test_a_label_is_a_column_or_an_expression():
    base = dict(source="s", table="t")
    assert LabelSpec(column="price", **base).label_name == "price"
    assert LabelSpec(expr="d > 15", **base).label_name == "label"
    assert LabelSpec(expr="d > 15", name="late", **base).label_name == "late"
    with pytest.raises(ValidationError, match="one of them"):
        LabelSpec(column="a", expr="b > 1", **base)
    with pytest.raises(ValidationError, match="one of them"):
        LabelSpec(**base)
    with pytest.raises(ValidationError, match="on_null"):
        LabelSpec(column="a", on_null="fill", **base)


def test_lookup_columns_and_entity_columns():
    lk = Lookup(
        name="w",
        table="t",
        key=["region", "station"],
        entity_columns=["area", "st"],
        time="at",
        columns={"rain_now": "rain_mm"},
        tolerance="2h",
    )
    assert lk.features == {"rain_now": "rain_mm"}
    assert lk.entity_key_columns == ["area", "st"]
    assert lk.tolerance_delta == dt.timedelta(hours=2)
    with pytest.raises(ValidationError, match="column for column"):
        Lookup(
            name="w",
            table="t",
            key=["a", "b"],
            entity_columns="a",
            time="at",
            columns=["x"],
            tolerance="1h",
        )
