import pytest
import yaml

from lakeloop.config import ConfigError
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT


def _write(tmp_path, edit):
    data = yaml.safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    edit(data)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_houses_spec_loads(houses, cfg):
    assert houses.name == "houses"
    assert houses.table_path("bronze_listings") == f"{cfg.lakehouse_root}/bronze/houses_listings"
    assert [s.format for s in houses.spec.sources.files] == ["csv", "json"]
    assert houses.spec.sources.kafka[0].fail_on_data_loss is True


@pytest.mark.parametrize(
    "name", ["bronze.listings; DROP TABLE x", "listings", "a.b.c", "../x.y", "bronze.`x`"]
)
def test_table_name_must_be_plain_identifier(cfg, tmp_path, name):
    path = _write(tmp_path, lambda d: d["tables"].update(bronze_listings=name))
    with pytest.raises(ConfigError, match="not a plain `schema.table` identifier"):
        load_pipeline(cfg, path)


@pytest.mark.parametrize("glob", ["../../etc/{date}/*.csv", "landing/../../../x/*.csv"])
def test_glob_outside_the_lakehouse_is_rejected(cfg, tmp_path, glob):
    path = _write(tmp_path, lambda d: d["sources"]["files"][0].update(glob=glob))
    with pytest.raises(ConfigError, match="outside the lakehouse root"):
        load_pipeline(cfg, path)


def test_absolute_glob_is_rejected(cfg, tmp_path):
    path = _write(tmp_path, lambda d: d["sources"]["files"][0].update(glob="/etc/*.csv"))
    with pytest.raises(ConfigError, match="must be relative to the lakehouse root"):
        load_pipeline(cfg, path)


def test_checkpoint_outside_the_lakehouse_is_rejected(cfg, tmp_path):
    path = _write(tmp_path, lambda d: d["sources"]["kafka"][0].update(checkpoint="../../ckpt"))
    with pytest.raises(ConfigError, match="checkpoint points outside"):
        load_pipeline(cfg, path)


def test_unknown_key_is_named_with_the_file(cfg, tmp_path):
    path = _write(tmp_path, lambda d: d["sources"]["files"][0].update(fromat="csv"))
    with pytest.raises(ConfigError) as e:
        load_pipeline(cfg, path)
    assert path in str(e.value) and "fromat: unknown key" in str(e.value)


def test_reference_to_unknown_table_key(cfg, tmp_path):
    path = _write(tmp_path, lambda d: d["sources"]["files"][0].update(table="bronze_nope"))
    with pytest.raises(ConfigError, match="'bronze_nope' is not a key of `tables`"):
        load_pipeline(cfg, path)


def test_unknown_column_type(cfg, tmp_path):
    path = _write(
        tmp_path, lambda d: d["sources"]["kafka"][0]["value_schema"][0].update(type="uuid")
    )
    with pytest.raises(ConfigError, match="value_schema.0.type"):
        load_pipeline(cfg, path)


def test_missing_spec_and_bad_name(cfg):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(cfg, "nosuchpipeline")
    with pytest.raises(ConfigError, match="not a plain identifier"):
        load_pipeline(cfg, "../houses")


def _sold_at(**options):
    def edit(d):
        d["sources"]["kafka"][0]["value_schema"][4].update(options)  # sold_at: timestamp

    return edit


def test_time_columns_take_a_unit_or_a_format_and_a_range(cfg, tmp_path):
    path = _write(tmp_path, _sold_at(unit="ms", min="2000-01-01", max="2100-01-01"))
    sold_at = load_pipeline(cfg, path).spec.sources.kafka[0].value_schema[4]
    assert (sold_at.unit, sold_at.format) == ("ms", None)
    assert [d.isoformat() for d in sold_at.time_range] == ["2000-01-01", "2100-01-01"]
    path = _write(tmp_path, _sold_at(format="dd/MM/yyyy HH:mm"))
    sold_at = load_pipeline(cfg, path).spec.sources.kafka[0].value_schema[4]
    assert [d.isoformat() for d in sold_at.time_range] == ["1970-01-01", "2200-01-01"]


@pytest.mark.parametrize(
    ("column", "options", "message"),
    [
        (4, {"unit": "ms", "format": "yyyy"}, "give either unit .* or format .*, not both"),
        (4, {"unit": "seconds"}, r"value_schema.4.unit"),
        (4, {"format": "YYYY-ww"}, "Y, w: not a Spark datetime pattern letter"),
        (4, {"min": "2300-01-01"}, "min 2300-01-01 must be before max 2200-01-01"),
        (3, {"unit": "s"}, "unit is only for timestamp columns .*double"),
        (3, {"format": "yyyy"}, "format is only for timestamp and date columns"),
        (0, {"max": "2030-01-01"}, "max is only for timestamp and date columns"),
    ],
)
def test_time_column_options_are_checked_at_load(cfg, tmp_path, column, options, message):
    def edit(d):
        d["sources"]["kafka"][0]["value_schema"][column].update(options)

    with pytest.raises(ConfigError, match=message):
        load_pipeline(cfg, _write(tmp_path, edit))
