"""Spec checks at load (issue 10): the time zone, label columns that clash with feature
columns, a label keyed by the entity itself, duplicate YAML keys."""

import pytest

from lakeloop.config import ConfigError
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT
from tests.unit.test_spec import _write


def test_timezone_defaults_to_utc_and_must_be_an_iana_name(cfg, tmp_path, houses):
    assert houses.spec.timezone == "UTC"
    ok = load_pipeline(cfg, _write(tmp_path, lambda d: d.update(timezone="America/New_York")))
    assert ok.spec.timezone == "America/New_York"
    with pytest.raises(ConfigError, match="timezone 'Mars/Olympus' is not an IANA time zone"):
        load_pipeline(cfg, _write(tmp_path, lambda d: d.update(timezone="Mars/Olympus")))


def test_a_label_column_that_is_also_a_feature_column_is_caught_at_load(cfg, tmp_path):
    def edit(d):  # the sales carry `sqft` too, and the label is taken from it
        d["sources"]["kafka"][0]["value_schema"].append({"name": "sqft", "type": "double"})
        d["label"]["column"] = "sqft"

    with pytest.raises(ConfigError) as e:
        load_pipeline(cfg, _write(tmp_path, edit))
    msg = str(e.value)
    assert "label.column (sqft): also a column of the feature table" in msg
    assert "sources.kafka[sales].value_schema" in msg and "Rename it" in msg


def test_a_label_time_named_like_a_feature_column_is_caught_at_load(cfg, tmp_path):
    def edit(d):
        schema = d["sources"]["kafka"][0]
        schema["value_schema"][-1]["name"] = "listed_at"
        schema["event_time_field"] = "listed_at"
        d["label"]["event_time"] = "listed_at"
        d["features"]["aggregates"] = [
            {**a, "event_time": "listed_at"} for a in d["features"]["aggregates"]
        ]

    with pytest.raises(ConfigError, match=r"label.event_time \(listed_at\): also a column"):
        load_pipeline(cfg, _write(tmp_path, edit))


def test_a_label_keyed_by_the_entity_key_loads(cfg, tmp_path):
    p = load_pipeline(cfg, _write(tmp_path, lambda d: d["label"].update(id="listing_id")))
    assert p.spec.label.id == p.spec.entity_key == "listing_id"


def test_duplicate_keys_in_a_spec_are_an_error_naming_the_key_and_lines(cfg, tmp_path):
    text = tmp_path / "dup.yaml"
    base = (ROOT / "conf/pipelines/houses.yaml").read_text()
    text.write_text(base + "timezone: UTC\ntimezone: Europe/Berlin\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline(cfg, str(text))
    assert "duplicate key 'timezone'" in str(e.value) and str(text) in str(e.value)


def test_a_projection_resolves_a_clash_between_two_sources_at_the_silver_step(cfg, tmp_path):
    """Both sources call a column `sqft`: renaming it at the sales' silver step is enough
    (bronze keeps the source's name); the renamed label reaches the training set."""

    def edit(d):
        d["sources"]["kafka"][0]["value_schema"].append({"name": "sqft", "type": "double"})
        d["expectations"][1]["project"] = {"rename": {"sqft": "sold_sqft"}}
        d["label"]["column"] = "sold_sqft"

    p = load_pipeline(cfg, _write(tmp_path, edit))
    assert "sold_sqft" in p.spec.silver_columns("silver_sales")
    assert "sqft" not in p.spec.silver_columns("silver_sales")


def test_a_label_on_the_entity_table_defaults_id_and_time_and_leaves_features(cfg, tmp_path):
    def edit(d):  # the listing's own price as the label (a tabular data set)
        d["sources"]["files"][0]["schema"].append({"name": "price", "type": "double"})
        d["label"] = {"source": "silver_listings", "table": "training_set", "expr": "log(price)"}

    p = load_pipeline(cfg, _write(tmp_path, edit))
    s = p.spec
    assert s.label_on_entity and s.label_ids == ["listing_id"]
    assert s.label_time_source == "listed_at" and s.label_time_column == "label_ts"
    assert s.label_reads == {"price"} and s.label_excluded_features == {"price"}
    assert s.model_label == "label" and s.model_time == "label_ts"
