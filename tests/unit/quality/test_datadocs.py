"""Data Docs offline (CDN links -> vendored copies) and the row rules as GX results."""

import json
import logging
import re
from pathlib import Path

import great_expectations
import pytest

from lakeloop import assets
from lakeloop.quality import datadocs
from lakeloop.quality.datadocs import RowRuleResult, localize_site, rewrite_links
from lakeloop.quality.gx_runner import validate_table_level
from lakeloop.quality.rules import compile_suite, with_rule_failures

TEMPLATES = Path(great_expectations.__file__).parent / "render/view/templates"
CDN_URL = re.compile(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)["']""")


def fake_cache(root: Path) -> Path:
    """An asset cache with every package's files (tiny stand-ins) and stamps."""
    for p in assets.PACKAGES:
        for f in p.files:
            path = root / p.folder / f
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"/* {p.spec} {f} */\n")
        (root / p.folder / assets.STAMP).write_text(json.dumps(assets._stamp_for(p)))
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = fake_cache(tmp_path / "assets-cache")
    monkeypatch.setenv(assets.CACHE_ENV, str(root))
    return root


def test_every_cdn_file_of_gx_templates_is_vendored():
    """A GX upgrade that links a new CDN file fails here, not in a browser."""
    linked = set()
    for template in TEMPLATES.glob("*.j2"):
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", template.read_text()):
            linked.update(CDN_URL.findall(tag))
    assert len(linked) >= 15
    assert linked - set(assets.BY_URL) == set()
    assert datadocs.GX_WEB_ASSETS in (TEMPLATES / "top_navbar.j2").read_text()  # GX's logo


PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" \
integrity="sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q" \
crossorigin="anonymous"></script>
<script src='https://cdn.jsdelivr.net/npm/vega@5'></script>
<script src="https://example.invalid/other.js"></script>
<link rel="shortcut icon" href="../static/images/favicon.ico"/>
</head><img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/\
logo-long.png?d=20260101T000000.000000Z&dataContextId=abc" alt="Great Expectations"/><body><a href="https://greatexpectations.io">GX</a></body></html>"""


def test_rewrite_links_points_known_cdn_files_at_the_local_copies():
    html, n = rewrite_links(PAGE, "../../")
    assert n == 4
    assert 'href="../../static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css"' in html
    assert (
        '<script src="../../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js"></script>'
        in html
    )  # the CDN's integrity/crossorigin go with it
    assert "src='../../static/vendor/vega@5.33.1/build/vega.min.js'" in html
    assert "integrity" not in html and "crossorigin" not in html
    assert '<a href="https://greatexpectations.io">' in html  # a link to read, not an asset
    assert 'href="../static/images/favicon.ico"' in html
    assert 'src="../../static/images/logo-long.png" alt=' in html  # GX's logo: the site's copy
    # an address lakeloop does not vendor is left alone and reported
    assert datadocs.external_assets(html) == ["https://example.invalid/other.js"]
    assert len(datadocs.external_assets(PAGE)) == 5


def test_localize_site_copies_assets_and_every_link_resolves(cache, tmp_path, caplog):
    site = tmp_path / "site"
    deep = site / "validations/suite/run/20260101T000000.000000Z/batch.html"
    deep.parent.mkdir(parents=True)
    deep.write_text(PAGE)
    (site / "index.html").write_text(PAGE)

    with caplog.at_level(logging.WARNING):
        result = localize_site(site)
    assert result.pages == 2 and result.links == 8
    assert result.copied == len(assets.CDN_FILES) + 4  # and Font Awesome's 4 woff2 fonts
    for page in (deep, site / "index.html"):
        text = page.read_text()
        for ref in re.findall(r"""(?:src|href)=["']([^"']*static/vendor/[^"']+)["']""", text):
            assert (page.parent / ref).resolve().is_file(), ref
    assert (site / "static/vendor/fortawesome-fontawesome-free@6.6.0/webfonts").is_dir()
    assert result.external == {k: ["https://example.invalid/other.js"] for k in result.external}
    assert "https://example.invalid/other.js" in caplog.text  # named in a warning

    again = localize_site(site)  # idempotent: nothing copied, nothing left to rewrite
    assert again.copied == 0 and again.links == 0


def test_missing_asset_cache_is_a_clear_warning_and_pages_stay(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "empty-cache"))
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    with pytest.raises(assets.MissingAssetsError, match=r"run `lakeloop setup` once"):
        localize_site(site)
    with caplog.at_level(logging.WARNING):
        assert datadocs.make_offline(site) is None
    assert "keep their CDN links" in caplog.text and "lakeloop setup" in caplog.text
    assert str(tmp_path / "empty-cache") in caplog.text
    assert (site / "index.html").read_text() == PAGE


def _result(t="expect_column_values_to_be_between", **kw):
    args = dict(
        type=t,
        kwargs={"column": "sqft", "min_value": 100},
        meta={},
        element_count=200,
        nonnull_count=160,
        unexpected_count=8,
        partial_unexpected_list=[5, 7, 5],
    )
    args.update(kw)
    return RowRuleResult(**args)


def test_row_rule_result_is_shaped_like_gx_map_results():
    r = _result()
    assert not r.success
    res = r.gx_result()
    assert res["element_count"] == 200 and res["unexpected_count"] == 8
    assert res["missing_count"] == 40
    assert res["unexpected_percent"] == pytest.approx(8 / 160 * 100)  # of the non-null rows
    assert res["unexpected_percent_total"] == pytest.approx(4.0)
    assert res["partial_unexpected_list"] == [5, 7, 5]
    assert res["partial_unexpected_counts"] == [{"value": 5, "count": 2}, {"value": 7, "count": 1}]

    not_null = _result(
        "expect_column_values_to_not_be_null",
        kwargs={"column": "zipcode"},
        nonnull_count=None,
        unexpected_count=3,
        partial_unexpected_list=[None, None, None],
    ).gx_result()
    assert not_null["unexpected_percent"] == pytest.approx(1.5)  # of all rows
    assert "missing_count" not in not_null

    assert _result(unexpected_count=0, partial_unexpected_list=[]).success
    mostly = {"column": "sqft", "min_value": 100, "mostly": 0.9}
    assert _result(kwargs=mostly).success  # 5% unexpected, 10% allowed
    assert not _result(kwargs=mostly, unexpected_count=40).success
    assert _result(nonnull_count=0, unexpected_count=0).success  # vacuously, as GX


SUITE = {
    "name": "tiny_suite",
    "meta": {"version": "1"},
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "size", "min_value": 0, "max_value": 100},
            "meta": {"notes": "sizes are percentages"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "zone", "value_set": ["a"]},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ],
}


@pytest.fixture(scope="module")
def gated(spark):
    rows = [(i if i % 10 else None, float(i) if i % 3 else 1000.0 + i, "a") for i in range(1, 61)]
    rows += [(100, None, "zz")]
    df = spark.createDataFrame(rows, "id INT, size DOUBLE, zone STRING")
    return with_rule_failures(df, compile_suite(SUITE).row_rules)


def test_row_rule_results_from_counts_and_a_few_values(gated):
    suite = compile_suite(SUITE)
    failed = {r.name: n for r, n in zip(suite.row_rules, (6, 20, 1), strict=True)}
    results = datadocs.row_rule_results(gated, suite, failed, 61)

    assert [r.type for r in results] == [r.type for r in suite.row_rules]
    not_null, between, in_set = results
    assert not_null.unexpected_count == 6 and not_null.partial_unexpected_list == [None] * 6
    assert not_null.nonnull_count is None
    assert between.element_count == 61 and between.nonnull_count == 60
    assert between.unexpected_count == 20  # the counts passed in are used as they are
    assert between.partial_unexpected_list == [1000.0 + i for i in range(3, 61, 3)]
    assert between.meta["notes"] == "sizes are percentages" and "lakeloop" in between.meta
    assert in_set.partial_unexpected_list == ["zz"]
    assert not any(r.success for r in results)


def test_row_rule_results_no_failures_runs_no_value_query(gated):
    suite = compile_suite(SUITE)
    results = datadocs.row_rule_results(gated, suite, {}, 61)
    assert all(r.success and r.partial_unexpected_list == [] for r in results)


def test_data_docs_list_the_whole_suite_offline(spark, gated, cache, tmp_path):
    suite = compile_suite(SUITE)
    failed = {r.name: n for r, n in zip(suite.row_rules, (6, 20, 1), strict=True)}
    row_level = datadocs.row_rule_results(gated, suite, failed, 61)
    docs = tmp_path / "docs"
    result = validate_table_level(gated, suite.table_suite(), docs, "run-1", row_level)

    # lakeloop's own outcome is about the table-level expectations only (the gate decides rows)
    assert result.success and [o.type for o in result.outcomes] == [
        "expect_table_row_count_to_be_between"
    ]
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    for e in SUITE["expectations"]:
        assert e["type"] in json.dumps(_stored_result(docs)), e["type"]
    assert "20 unexpected values found" in page
    assert "zz" in page  # a sampled unexpected value
    suite_page = (docs / "expectations/tiny_suite.html").read_text()
    words = " ".join(re.sub(r"<[^>]+>", " ", suite_page).split())
    for text in ("must never be null", "must be greater than or equal to 0.0", "must belong"):
        assert text in words, text  # the suite page lists the row rules too
    for html in (page, suite_page, (docs / "index.html").read_text()):
        assert datadocs.external_assets(html) == []
    stored = _stored_result(docs)
    assert stored["success"] is False
    assert stored["statistics"]["evaluated_expectations"] == 4
    assert stored["statistics"]["unsuccessful_expectations"] == 3


def _stored_result(docs: Path) -> dict:
    (path,) = (docs / ".gx_validation_results").rglob("*.json")
    return json.loads(path.read_text())


def test_row_rules_only_suite_still_gets_data_docs(gated, cache, tmp_path):
    rows_only = {**SUITE, "expectations": SUITE["expectations"][:3]}
    suite = compile_suite(rows_only)
    row_level = datadocs.row_rule_results(gated, suite, {suite.row_rules[0].name: 6}, 61)
    result = validate_table_level(gated, suite.table_suite(), tmp_path / "docs", "r", row_level)
    assert result.outcomes == [] and result.docs_index is not None
    assert _stored_result(tmp_path / "docs")["statistics"]["evaluated_expectations"] == 3
    # without a docs folder nothing needs GX
    assert validate_table_level(gated, suite.table_suite(), None, "r", row_level).outcomes == []
