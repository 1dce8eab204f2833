"""GX Data Docs of a validate run, opened in headless Chromium with the network blocked: the
pages are styled, their tables rendered by bootstrap-table, no request leaves the machine, and
the validation page lists every expectation of the suite (row-level rules included).

Needs Debian's chromium (/usr/bin/chromium): `make browser` installs it (`make test` runs it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from lakeloop import assets
from lakeloop.config import load_config
from lakeloop.generate import houses as gen
from lakeloop.jobs import ingest_files, validate
from lakeloop.quality import datadocs
from tests.conftest import ROOT, spec_variant

CHROMIUM = Path("/usr/bin/chromium")
D1 = dt.date(2026, 1, 1)
SUITE = json.loads((ROOT / "expectations/houses/bronze_listings.json").read_text())
# Every flag keeps Chromium itself quiet (no sync, updates, first-run); the resolver maps every
# host to NOTFOUND, so nothing can connect off the machine whatever asks.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--virtual-time-budget=5000",
)
# Injected into a copy of a page (beside it, so its relative links stay right): what the
# browser made of the page once it loaded and its fonts were ready.
CHECK = """<script>
window.addEventListener('load', function () {
  document.fonts.ready.then(function () {
    var nav = document.querySelector('nav.navbar');
    var loaded = [];
    document.fonts.forEach(function (f) { if (f.status === 'loaded') loaded.push(f.family); });
    var sheets = 0;
    for (var i = 0; i < document.styleSheets.length; i++) {
      if ((document.styleSheets[i].href || '').indexOf('/static/vendor/') >= 0) sheets++;
    }
    document.documentElement.setAttribute('data-lakeloop-check', JSON.stringify({
      navbar_display: nav ? getComputedStyle(nav).display : null,
      bootstrap_table: typeof (window.jQuery && window.jQuery.fn.bootstrapTable),
      tables: document.querySelectorAll('div.bootstrap-table table tbody').length,
      rows: document.querySelectorAll('div.bootstrap-table table tbody tr').length,
      vendored_sheets: sheets,
      fonts_loaded: loaded
    }));
  });
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium package; "
            "needs root, as `make test` on CI has)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def site(spark, tmp_path_factory) -> Path:
    """One small houses day (listings only, some malformed rows), ingested and validated."""
    assets.setup()  # the user cache `lakeloop setup` fills; a no-op when it is there
    tmp = tmp_path_factory.mktemp("datadocs")
    overrides = {"lakehouse_root": str(tmp / "lakehouse"), "quality": {"data_docs": True}}
    cfg = load_config("test", overrides, project_root=ROOT)  # conf/test turns Data Docs off

    def listings_only(d):
        d["expectations"] = [e for e in d["expectations"] if e["source"] == "bronze_listings"]

    p, _ = spec_variant(cfg, tmp, listings_only)
    gen.generate(p, start=D1, days=1, rows_per_day=120, malformed=0.05, produce=False)
    ingest_files.run(spark, p, D1)
    rec = validate.run(spark, p, D1)
    docs = rec.details["bronze_listings.data_docs"]  # the run log names the site's index
    assert (
        docs.endswith("index.html")
        and f"GX Data Docs: {docs}" in open(rec.details["summary"]).read()
    )
    return Path(docs).parent


def browse(chromium: Path, page: Path, work: Path) -> tuple[dict, str, dict]:
    """Open a copy of `page` (with CHECK injected) from disk: the check's result, the DOM
    after the scripts ran, and the net log."""
    probe = page.with_name(page.stem + ".lakeloop-check.html")
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    work.mkdir(parents=True, exist_ok=True)
    net_log = work / "net-log.json"
    proc = subprocess.run(
        [
            str(chromium),
            *FLAGS,
            f"--user-data-dir={work / 'profile'}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    probe.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-lakeloop-check="([^"]*)"', proc.stdout)
    assert found, f"the page's scripts never ran the check: {proc.stdout[:500]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return check, proc.stdout, json.loads(net_log.read_text())


def page_requests(net_log: dict) -> list[str]:
    """The URLs the page asked for over the network: a request with an initiator (a document;
    Chromium's own background requests have none). file:// loads never reach the net log."""
    names = {v: k for k, v in net_log["constants"]["logEventTypes"].items()}
    return [
        e["params"]["url"]
        for e in net_log["events"]
        if names[e["type"]] == "URL_REQUEST_START_JOB"
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != "not an origin"
        and not e["params"]["url"].startswith("file:")
    ]


def connections(net_log: dict) -> list[dict]:
    """TCP connect jobs that did not fail (each host resolves to NOTFOUND, so: none)."""
    names = {v: k for k, v in net_log["constants"]["logEventTypes"].items()}
    return [
        e
        for e in net_log["events"]
        if names[e["type"]] == "TCP_CONNECT_JOB_CONNECT"
        and e["phase"] == 2  # the end of the job
        and not (e.get("params") or {}).get("net_error")
    ]


def test_validation_page_renders_offline_and_lists_the_whole_suite(chromium, site, tmp_path):
    (page,) = (site / "validations").rglob("*.html")
    check, dom, net_log = browse(chromium, page, tmp_path / "chromium")

    assert check["navbar_display"] == "flex", check  # Bootstrap's CSS applied
    assert check["vendored_sheets"] == 6, check  # every stylesheet the page links, local
    assert check["bootstrap_table"] == "function", check  # jQuery + bootstrap-table ran
    assert check["tables"] >= 5 and check["rows"] >= 20, check  # tables rendered, with rows
    assert "Font Awesome 6 Free" in check["fonts_loaded"], check  # the icons' webfont
    assert page_requests(net_log) == []
    assert connections(net_log) == []

    # every expectation of the suite is listed with its result, row-level rules included
    text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
    assert len(SUITE["expectations"]) == 15
    (stored,) = (site / ".gx_validation_results").rglob("*.json")
    results = json.loads(stored.read_text())["results"]
    listed = [
        (r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"))
        for r in results
    ]
    in_suite = [(e["type"], e["kwargs"].get("column")) for e in SUITE["expectations"]]
    assert len(set(in_suite)) == 15 and sorted(listed) == sorted(in_suite)
    icons = re.findall(r'<i class="fas fa-(check-circle text-success|times text-danger)', dom)
    assert len(icons) >= 15  # one status per expectation (+ the page's overall status)
    assert "Evaluated Expectations 15" in text
    rendered = {  # GX's own words for each kind of expectation in the suite, on the page
        "values must be null": 1,
        "values must never be null": 3,
        "values must match this regular expression": 2,
        "Observed Value values must be greater than or equal to": 5,  # (not the proportion)
        "values must belong to this set": 1,
        "Must have greater than or equal to 1 rows": 1,
        "mean must be greater than or equal to 500.0": 1,
        "proportion of unique values must be greater than or equal to 0.99": 1,
    }
    assert sum(rendered.values()) == 15
    assert {phrase: text.count(phrase) for phrase in rendered} == rendered
    assert "unexpected values found" in text  # the quarantined rows' partial unexpected list
    not_null = {
        r["expectation_config"]["kwargs"]["column"]: r["result"]
        for r in results
        if r["expectation_config"]["type"] == "expect_column_values_to_be_null"
    }
    assert not_null["_error"]["unexpected_count"] > 0  # the malformed rows
    assert not_null["_error"]["element_count"] == 120


def test_index_page_table_is_filled_by_its_scripts_offline(chromium, site, tmp_path):
    index = site / "index.html"
    assert "<tr" not in index.read_text()  # its rows exist only once its scripts ran
    check, dom, net_log = browse(chromium, index, tmp_path / "chromium")
    assert check["bootstrap_table"] == "function" and check["navbar_display"] == "flex", check
    assert check["rows"] >= 2, check  # the validation run and the suite, from the JS data
    assert "houses-bronze_listings-2026-01-01" in dom
    assert page_requests(net_log) == [] and connections(net_log) == []
    for html in site.rglob("*.html"):
        assert datadocs.external_assets(html.read_text()) == [], html


def test_a_page_that_loads_from_a_cdn_is_caught(chromium, tmp_path):
    """The net-log check can fail: a page with one CDN script shows up in it (the request
    fails, as every host resolves to NOTFOUND)."""
    page = tmp_path / "site" / "cdn.html"
    page.parent.mkdir()
    page.write_text(
        "<html><head><script src='https://cdn.jsdelivr.net/npm/vega@5'></script></head>"
        "<body>x</body></html>"
    )
    check, _, net_log = browse(chromium, page, tmp_path / "chromium")
    assert check["bootstrap_table"] != "function"
    assert page_requests(net_log) == ["https://cdn.jsdelivr.net/npm/vega@5"]
    assert connections(net_log) == []
