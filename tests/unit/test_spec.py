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
    assert houses.table_path("bronze_listings") == str(
        cfg.lakehouse_root / "bronze/houses_listings"
    )
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
