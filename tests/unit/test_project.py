"""`lakeloop init` and how `lakeloop` finds a project (config.find_project_root)."""

import json
from pathlib import Path

import pytest

from lakeloop import project
from lakeloop.config import PROJECT_MARKER, ConfigError, find_project_root, load_config
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT


@pytest.mark.parametrize(("example", "spec"), [("houses", "houses"), ("blank", "my_pipeline")])
def test_init_writes_a_project_whose_spec_loads(example, spec, tmp_path: Path):
    target = tmp_path / "new" / "proj"  # parents are created
    result = project.init_project(target, example)
    files = {str(f) for f in result.files}
    assert {
        "conf/base/lakeloop.yaml",
        "conf/dev/lakeloop.yaml",
        "conf/test/lakeloop.yaml",
        f"conf/pipelines/{spec}.yaml",
        "README.md",
        ".gitignore",
        "dags/lakeloop_dags.py",  # `lakeloop airflow up` runs the specs' DAGs from here
        "jobs/predict.py",  # the spark-submit entry files the DAGs run
        PROJECT_MARKER,
    } <= files
    assert any(f.startswith(f"expectations/{spec}/") for f in files)
    assert all((target / f).is_file() and not (target / f).is_symlink() for f in files)
    # the spec's editor modeline resolves inside the new project
    modeline = (target / f"conf/pipelines/{spec}.yaml").read_text().splitlines()[0]
    assert modeline == "# yaml-language-server: $schema=../../docs/spec.schema.json"
    assert json.loads((target / "docs/spec.schema.json").read_text())["title"]
    assert (target / "conf/base/lakeloop.yaml").read_text() == (
        ROOT / "conf/base/lakeloop.yaml"
    ).read_text()
    assert "lakeloop setup" in (target / "README.md").read_text()
    cfg = load_config("test", project_root=find_project_root(target / "conf" / "pipelines"))
    assert cfg.project_root == target.resolve()
    pipeline = load_pipeline(cfg, spec)  # validates, suites included
    assert pipeline.spec.name == spec


def test_houses_template_is_the_repository_spec(tmp_path: Path):
    project.init_project(tmp_path / "p", "houses")
    assert (tmp_path / "p/conf/pipelines/houses.yaml").read_bytes() == (
        ROOT / "conf/pipelines/houses.yaml"
    ).read_bytes()
    for suite in (ROOT / "expectations/houses").iterdir():
        assert (tmp_path / "p/expectations/houses" / suite.name).read_bytes() == suite.read_bytes()


def test_blank_has_no_data_stages_yet(tmp_path: Path):
    project.init_project(tmp_path / "b", "blank")
    cfg = load_config("test", project_root=tmp_path / "b")
    spec = load_pipeline(cfg, "my_pipeline").spec
    assert spec.features is None and spec.label is None and spec.model is None
    assert [s.name for s in spec.sources.files] == ["records_csv"]


def test_init_refuses_non_empty_and_unknown_example(tmp_path: Path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.me").write_text("1")
    with pytest.raises(project.ProjectError, match=r"is not empty; .*--force"):
        project.init_project(tmp_path / "x", "houses")
    (tmp_path / "f").write_text("a file")
    with pytest.raises(project.ProjectError, match="is not a folder"):
        project.init_project(tmp_path / "f", "houses", force=True)
    with pytest.raises(project.ProjectError, match="unknown example 'nope'"):
        project.init_project(tmp_path / "y", "nope")
    assert not (tmp_path / "y").exists()


def test_force_overwrites_the_template_files_only(tmp_path: Path):
    target = tmp_path / "p"
    project.init_project(target, "houses")
    (target / "README.md").write_text("edited")
    (target / "data.csv").write_text("mine")
    project.init_project(target, "houses", force=True)
    assert "lakeloop setup" in (target / "README.md").read_text()
    assert (target / "data.csv").read_text() == "mine"


def test_project_root_is_found_by_its_marker_not_by_conf_alone(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("LAKELOOP_HOME", raising=False)
    bare = tmp_path / "bare"
    (bare / "conf/base").mkdir(parents=True)
    (bare / "deep/er").mkdir(parents=True)
    # conf/base alone (e.g. another tool's project) is not a lakeloop project: the search goes
    # on and ends at the source checkout
    assert find_project_root(bare / "deep/er") == ROOT
    (bare / PROJECT_MARKER).write_text("example: blank\n")
    assert find_project_root(bare / "deep/er") == bare.resolve()
    monkeypatch.setenv("LAKELOOP_HOME", str(tmp_path / "home"))  # LAKELOOP_HOME comes first
    assert find_project_root(bare / "deep/er") == (tmp_path / "home").resolve()


def test_no_project_anywhere_says_how_to_make_one(tmp_path: Path, monkeypatch):
    from lakeloop import config

    monkeypatch.delenv("LAKELOOP_HOME", raising=False)
    fake_pkg = tmp_path / "site-packages" / "lakeloop" / "config.py"  # an installed wheel
    monkeypatch.setattr(config, "__file__", str(fake_pkg))
    with pytest.raises(ConfigError, match=r"cannot find a lakeloop project .*`lakeloop init DIR`"):
        find_project_root(tmp_path)
