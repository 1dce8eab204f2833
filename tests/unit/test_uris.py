"""Lakehouse locations as URIs: normalizing, joining and the stays-under-the-root check."""

from pathlib import Path

import pytest

from lakeloop import uris
from lakeloop.config import ConfigError, load_config
from lakeloop.spec import Pipeline, PipelineSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("lh", "/proj/lh"),
        ("/data/lake/", "/data/lake"),
        ("file:///data//lake/", "file:///data/lake"),
        ("hdfs://nn:9820/lake/", "hdfs://nn:9820/lake"),
        ("s3a://bucket/a/./b", "s3a://bucket/a/b"),
        ("abfss://c@acct.dfs.core.windows.net/lake", "abfss://c@acct.dfs.core.windows.net/lake"),
    ],
)
def test_normalize(given, expected):
    assert uris.normalize(given, base=Path("/proj")) == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("ftp://host/lake", "unknown storage scheme 'ftp'"),
        ("hdfs://nn/lake/../etc", r"'\.\.' is not allowed"),
        ("lake/../../etc", r"'\.\.' is not allowed"),
        ("s3a://bucket/lake?versionId=1", "no \\?query"),
        ("", "empty"),
    ],
)
def test_normalize_refuses(given, why):
    with pytest.raises(ValueError, match=why):
        uris.normalize(given, base=Path("/proj"))


@pytest.mark.parametrize(
    ("root", "uri", "inside"),
    [
        ("/lake", "/lake/bronze/t", True),
        ("/lake", "/lake", True),
        ("/lake", "/lakehouse/t", False),  # a prefix of the name is not a parent
        ("/lake", "file:///lake/t", True),  # a bare path and file: are the same disk
        ("file:///lake", "/other", False),
        ("hdfs://nn:9820/lake", "hdfs://nn:9820/lake/a/b", True),
        ("hdfs://nn:9820/lake", "hdfs://nn2:9820/lake/a", False),  # another NameNode
        ("hdfs://nn:9820/lake", "s3a://nn:9820/lake/a", False),  # another scheme
        ("hdfs://nn:9820/lake", "/lake/a", False),  # a local path is not on HDFS
        ("hdfs://nn:9820/lake", "hdfs://nn:9820/lake/../x", False),
        ("s3a://b/lake", "s3a://b/lake/./x", True),
    ],
)
def test_within(root, uri, inside):
    assert uris.within(root, uri) is inside


def test_join_parent_relative():
    assert uris.join("hdfs://nn/lake", "landing/x/date=1/*.csv") == (
        "hdfs://nn/lake/landing/x/date=1/*.csv"
    )
    assert uris.join("/lake/", "/a/", "b") == "/lake/a/b"
    assert uris.parent("hdfs://nn/lake/a/b.html") == "hdfs://nn/lake/a"
    assert uris.relative("hdfs://nn/lake/reports/p/html", "hdfs://nn/lake/reports/p/v/x.html") == (
        "../v/x.html"
    )
    assert uris.relative("/lake/r", "hdfs://nn/lake/x") is None
    assert uris.local_path("file:///tmp/a b") == Path("/tmp/a b")
    with pytest.raises(ValueError, match="not on the local file system"):
        uris.local_path("hdfs://nn/lake")


def _config(tmp_path, root):
    return load_config("test", {"lakehouse_root": root}, project_root=ROOT)


def test_config_keeps_remote_roots_and_refuses_bad_ones(tmp_path):
    cfg = _config(tmp_path, "hdfs://127.0.0.1:9820/lake/")
    assert cfg.lakehouse_root == "hdfs://127.0.0.1:9820/lake"
    with pytest.raises(ConfigError, match="key lakehouse_root: .*unknown storage scheme 'ftp'"):
        _config(tmp_path, "ftp://host/lake")


def _spec(**sources):
    base = PipelineSpec.model_validate(
        __import__("yaml").safe_load((ROOT / "conf/pipelines/houses.yaml").read_text())
    ).model_dump(by_alias=True)
    base["sources"] = {**base["sources"], **sources}
    return PipelineSpec.model_validate(base)


def test_pipeline_paths_are_uris_on_a_remote_root(tmp_path):
    cfg = _config(tmp_path, "hdfs://127.0.0.1:9820/lake")
    p = Pipeline(cfg, _spec())
    assert p.table_path("bronze_listings") == "hdfs://127.0.0.1:9820/lake/bronze/houses_listings"
    assert p.checkpoint(p.spec.sources.kafka[0]).startswith("hdfs://127.0.0.1:9820/lake/_checkp")
    assert p.reports_uri("html") == "hdfs://127.0.0.1:9820/lake/reports/houses/html"
    with pytest.raises(ConfigError, match="not on the local file system"):
        p.local_root  # noqa: B018


def test_spec_paths_must_stay_under_the_root(tmp_path):
    cfg = _config(tmp_path, "hdfs://127.0.0.1:9820/lake")
    spec = _spec()
    files = spec.model_dump(by_alias=True)["sources"]["files"]
    escaping = [{**files[0], "glob": "landing/../../etc/date={date}/*.csv"}]
    with pytest.raises(ConfigError, match=r"glob .* points outside the lakehouse root"):
        Pipeline(cfg, _spec(files=escaping))
    kafka = spec.model_dump(by_alias=True)["sources"]["kafka"]
    with pytest.raises(ConfigError, match="checkpoint points outside"):
        Pipeline(cfg, _spec(kafka=[{**kafka[0], "checkpoint": "../ckpt"}]))
    with pytest.raises(Exception, match="must be relative to the lakehouse root"):
        _spec(files=[{**files[0], "glob": "s3a://other/date={date}/*.csv"}])
