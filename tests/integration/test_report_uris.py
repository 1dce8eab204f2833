"""The human-readable outputs (HTML run report, validate summary.md + GX Data Docs, model
report) on a lakehouse root given as a `file://` URI: everything lands under the root, written
through the session's Hadoop FileSystem, and nothing treats the URI as a local path (which
would create a folder literally named `file:` in the working directory, or turn `hdfs://nn/x`
into `hdfs:/nn/x`). The upload branch GX Data Docs take on a remote root is forced here on a
local one (the same code, only the target file system differs)."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from lakeloop import storage
from lakeloop.config import load_config
from lakeloop.jobs import train, validate
from lakeloop.ml import tracking
from lakeloop.reports import html, run_report
from lakeloop.spec import load_pipeline
from tests.conftest import ROOT

D1 = dt.date(2026, 1, 1)


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """An empty working directory: a URI mistaken for a relative path would show up in it."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _file_root(tmp_path: Path, **overrides):
    lake = tmp_path / "lake"
    cfg = load_config("test", {"lakehouse_root": f"file://{lake}", **overrides}, project_root=ROOT)
    assert cfg.lakehouse_root == f"file://{lake}"
    return cfg, lake


def _nothing_in(cwd: Path) -> None:
    assert sorted(x.name for x in cwd.iterdir()) == []
    assert not Path("file:").exists() and not Path("hdfs:").exists()


def _report(docs: str) -> run_report.RunReport:
    r = run_report.RunReport("houses", D1, "regression", "houses_price", 0.2, "r2", "now")
    r.dq_days = pd.DataFrame(
        {
            "table": ["silver.houses_listings"],
            "data_date": [D1],
            "rows_in": [100],
            "silver_rows": [97],
            "quarantined": [3],
            "pass_rate": [0.97],
            "data_docs": [docs],
        }
    )
    r.index = [run_report.IndexRow(D1, False, "none", False, "nothing fired", 0, 0.01)]
    return r


def test_html_report_on_a_file_uri_root_lands_under_the_root(spark, tmp_path, cwd):
    cfg, lake = _file_root(tmp_path)
    p = load_pipeline(cfg, "houses")
    docs = p.reports_uri("validate", "2026-01-01", "bronze_listings", "data_docs", "index.html")
    assert docs.startswith("file:///")
    out = html.output_dir(p)
    written = html.write(spark, _report(docs), out)
    folder = lake / "reports/houses/html"
    assert written.page == f"file://{folder}/2026-01-01.html"
    assert written.index == f"file://{folder}/index.html"
    page = (folder / "2026-01-01.html").read_text()
    assert written.page_bytes == len(page.encode())
    # the Data Docs link is relative from the page; the index links the page
    assert 'href="../validate/2026-01-01/bronze_listings/data_docs/index.html"' in page
    assert 'href="2026-01-01.html"' in (folder / "index.html").read_text()
    script = folder / html.PLOTLY_JS
    package = (resources.files("plotly") / "package_data" / html.PLOTLY_JS).read_bytes()
    assert script.stat().st_size == len(package)
    # plotly.min.js is copied once; a copy of another size is replaced
    stamp = script.stat().st_mtime_ns
    html.write(spark, _report(docs), out)
    assert script.stat().st_mtime_ns == stamp
    script.write_text("stale")
    html.write(spark, _report(docs), out)
    assert script.stat().st_size == len(package)
    _nothing_in(cwd)


def test_report_folder_uploads_even_when_the_run_fails(spark, tmp_path):
    target = f"file://{tmp_path}/reports/p/validate/2026-01-01"
    with pytest.raises(RuntimeError, match="blocked"):
        with validate.report_folder(spark, target, in_place=False) as folder:
            (folder.local / "t/data_docs").mkdir(parents=True)
            (folder.local / "t/data_docs/index.html").write_text("<html>site</html>")
            raise RuntimeError("blocked")
    site = tmp_path / "reports/p/validate/2026-01-01/t/data_docs/index.html"
    assert site.read_text() == "<html>site</html>"
    # a remote root never builds in place; a local one does, at its path (not a `file:` folder)
    with validate.report_folder(spark, target) as folder:
        assert folder.local == tmp_path / "reports/p/validate/2026-01-01"
        assert folder.data_docs("t") == (
            folder.local / "t/data_docs",
            f"{target}/t/data_docs/index.html",
        )


class _Client:
    def __init__(self):
        self.logged: list[tuple[str, str, str]] = []

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.logged.append((run_id, text, artifact_file))


def test_model_report_on_a_file_uri_root(spark, tmp_path, cwd):
    cfg, lake = _file_root(tmp_path)
    p = load_pipeline(cfg, "houses")
    client = _Client()
    ref = tracking.ModelRef("houses_price", 3, "run3")
    uri = train.write_model_report(spark, client, p, ref, "# houses_price v3\n")
    path = lake / "reports/houses/models/houses_price-v3.md"
    assert uri == f"file://{path}" and path.read_text() == "# houses_price v3\n"
    assert storage.read_text(spark, uri) == "# houses_price v3\n"
    assert client.logged == [("run3", "# houses_price v3\n", "houses_price-v3.md")]
    _nothing_in(cwd)
