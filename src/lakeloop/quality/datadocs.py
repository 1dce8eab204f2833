"""GX Data Docs that open offline and show the whole suite.

Two things GX's own Data Docs lack here:

- **Offline pages.** GX links its CSS, JS and fonts from CDNs. `localize_site` copies the
  vendored files (`lakeloop.assets`, fetched once by `lakeloop setup`) into the site's
  `static/vendor/<package>@<version>/` and rewrites every page's `<script src>` / `<link href>`
  to the relative local copy (dropping the CDN's `integrity`/`crossorigin`: the vendored files
  were checked against GX's hashes at set-up). A page opened from disk then makes no request
  off the machine. A CDN link lakeloop does not know is left as it is and named in a warning.
- **The row-level rules.** lakeloop evaluates the suite's row-level expectations itself (one
  Spark pass, `quality.rules`; the failing rows go to quarantine), so GX never sees them.
  `row_rule_results` turns what validate already counted into GX-shaped results (element
  count, nonnull count, unexpected count and percent, a partial unexpected list of up to 20
  values from the failing rows), which `gx_runner` adds to the same validation result as the
  table-level expectations: the Data Docs page lists every expectation of the suite.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lakeloop import assets

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from lakeloop.quality.rules import CompiledSuite

log = logging.getLogger(__name__)

VENDOR_DIR = PurePosixPath("static/vendor")  # under the site root
PARTIAL_UNEXPECTED = 20  # values in a partial unexpected list (GX's SUMMARY default too)
# Row rules whose GX result counts nulls as the unexpected values (no "missing" part).
NOT_NULL = "expect_column_values_to_not_be_null"
NULL_RULES = (NOT_NULL, "expect_column_values_to_be_null")
SOURCE_NOTE = (
    "Evaluated by lakeloop's row-level gate on the date's bronze rows (failing rows are "
    "quarantined); the values are the first failing rows by source position."
)

_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE | re.DOTALL)
# GX's navbar shows its logo from GX's web-assets bucket (with the time and the context id in
# the query); the same image is in every site's static/images/.
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
SITE_IMAGES = PurePosixPath("static/images")
_URL_ATTR = re.compile(r"""(\b(?:src|href)\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_CDN_ONLY_ATTR = re.compile(
    r"""\s+(?:integrity\s*=\s*(["']).*?\1|crossorigin(?:\s*=\s*(["']).*?\2)?)""",
    re.IGNORECASE | re.DOTALL,
)
_ASSET_TAG = re.compile(r"<(?:script|link|img|source)\b[^>]*>", re.IGNORECASE | re.DOTALL)
_EXTERNAL = re.compile(r"""\b(?:src|href)\s*=\s*(["'])((?:https?:)?//.*?)\1""", re.IGNORECASE)


def vendored_path(cdn: assets.CdnFile) -> PurePosixPath:
    """Where a CDN file lives in a site: `static/vendor/<package>@<version>/<path>`."""
    return VENDOR_DIR / cdn.package.folder / cdn.path


def rewrite_links(html: str, to_site_root: str) -> tuple[str, int]:
    """Every known CDN `src`/`href` of a `<script>`/`<link>` in `html` -> the vendored copy
    (GX's logo from its web-assets bucket -> the site's own copy), relative to the page (`to_site_root` is the page folder's way up to the site root, e.g.
    `../../`); returns the new text and how many links were rewritten."""
    rewritten = 0

    def tag(match: re.Match[str]) -> str:
        nonlocal rewritten
        text = match.group(0)
        found = False

        def attr(m: re.Match[str]) -> str:
            nonlocal found
            url = m.group(3).strip()
            cdn = assets.BY_URL.get(url)
            if cdn is not None:
                local = vendored_path(cdn)
            elif url.startswith(GX_WEB_ASSETS):
                local = SITE_IMAGES / url[len(GX_WEB_ASSETS) :].split("?")[0]
            else:
                return m.group(0)
            found = True
            return f"{m.group(1)}{m.group(2)}{to_site_root}{local}{m.group(2)}"

        text = _URL_ATTR.sub(attr, text)
        if found:
            rewritten += 1
            text = _CDN_ONLY_ATTR.sub("", text)
        return text

    return _TAG.sub(tag, html), rewritten


def external_assets(html: str) -> list[str]:
    """The off-machine addresses the page still loads (script, stylesheet, image, source)."""
    return [m.group(2) for tag in _ASSET_TAG.findall(html) for m in _EXTERNAL.finditer(tag)]


@dataclass
class SiteAssets:
    site: Path
    pages: int = 0  # HTML pages looked at
    links: int = 0  # links rewritten to local copies
    copied: int = 0  # files copied into the site now (0: they were there already)
    external: dict[str, list[str]] = field(default_factory=dict)  # page -> addresses left


def _copy_vendored(site: Path, root: Path) -> int:
    """The vendored files (and the fonts their CSS loads) into the site; unchanged ones kept."""
    copied = 0
    wanted = {(c.package, c.path) for c in assets.CDN_FILES}
    wanted |= {(p, f) for p in assets.PACKAGES for f in p.site_files}
    for package, path in sorted(wanted, key=lambda x: (x[0].folder, x[1])):
        src = root / package.folder / path
        dst = site / VENDOR_DIR / package.folder / path
        if dst.is_file() and dst.stat().st_size == src.stat().st_size:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        copied += 1
    return copied


def localize_site(site: Path, root: Path | None = None) -> SiteAssets:
    """Copy the vendored assets into the Data Docs `site` and point every page at them.
    MissingAssetsError (naming `lakeloop setup`) when the asset cache is incomplete; pages are
    then left untouched."""
    site = Path(site)
    root = assets.require(root)
    result = SiteAssets(site)
    result.copied = _copy_vendored(site, root)
    for page in sorted(site.rglob("*.html")):
        rel = page.parent.relative_to(site)
        up = "../" * len(rel.parts)
        text = page.read_text(encoding="utf-8")
        new, n = rewrite_links(text, up)
        if n:
            page.write_text(new, encoding="utf-8")
        result.pages += 1
        result.links += n
        left = external_assets(new)
        if left:
            result.external[str(page.relative_to(site))] = left
    if result.external:
        log.warning(
            "Data Docs %s: %d page(s) still load files from the network (not vendored by "
            "lakeloop.assets): %s",
            site,
            len(result.external),
            ", ".join(sorted({u for urls in result.external.values() for u in urls})),
        )
    return result


def make_offline(site: Path) -> SiteAssets | None:
    """`localize_site`, or a warning that says what to run when the asset cache is missing
    (the pages still work with a network); never raises for that."""
    try:
        return localize_site(site)
    except assets.MissingAssetsError as e:
        log.warning("GX Data Docs in %s keep their CDN links (unstyled offline): %s", site, e)
        return None


# --- the row-level rules as GX results ------------------------------------------------------


@dataclass(frozen=True)
class RowRuleResult:
    """A row-level expectation's outcome on the rows the gate evaluated."""

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    element_count: int  # rows evaluated
    nonnull_count: int | None  # rows with a value in the column; None for the null rules
    unexpected_count: int  # rows failing the rule
    partial_unexpected_list: list[Any]  # up to PARTIAL_UNEXPECTED failing values

    @property
    def success(self) -> bool:
        mostly = float(self.kwargs.get("mostly", 1.0))
        considered = self.element_count if self.nonnull_count is None else self.nonnull_count
        if considered == 0:
            return True  # vacuously, as GX
        return (considered - self.unexpected_count) / considered >= mostly

    def gx_result(self) -> dict[str, Any]:
        """The `result` GX's own map expectations report in the SUMMARY format."""
        from great_expectations.expectations.expectation import _format_map_output
        from great_expectations.expectations.expectation_configuration import parse_result_format

        formatted = _format_map_output(
            result_format=parse_result_format(
                {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED}
            ),
            success=self.success,
            element_count=self.element_count,
            nonnull_count=self.nonnull_count,
            unexpected_count=self.unexpected_count,
            unexpected_list=list(self.partial_unexpected_list),
        )
        return formatted["result"]


def _typed(value: str | None, spark_type: Any) -> Any:
    """An example value (text, from `rule_failure_examples`) back as its column's type, so a
    number shows as a number; text otherwise."""
    from pyspark.sql import types as T

    if value is None:
        return None
    try:
        if isinstance(spark_type, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
            return int(value)
        if isinstance(spark_type, (T.FloatType, T.DoubleType, T.DecimalType)):
            return float(value)
        if isinstance(spark_type, T.BooleanType):
            return value.lower() == "true"
    except ValueError:
        pass
    return value


def row_rule_results(
    gated: DataFrame, suite: CompiledSuite, failed: Mapping[str, int], element_count: int
) -> list[RowRuleResult]:
    """GX-shaped outcomes of the row rules from what validate counted: `failed` is rule name
    -> failing rows (validate's summary), `element_count` the rows the gate evaluated, `gated`
    those rows with `_failed_rules` (persisted by validate). Two small Spark jobs: the nonnull
    count of each rule column (one aggregate row) and up to PARTIAL_UNEXPECTED failing values
    per failing rule (at most that many rows per rule reach the driver)."""
    from pyspark.sql import functions as F

    from lakeloop.quality.rules import FAILED, is_row_level, rule_failure_examples

    rules = suite.row_rules
    if not rules:
        return []
    entries = [e for e in suite.raw["expectations"] if is_row_level(e.get("type", ""))]
    counted = sorted({r.column for r in rules if r.type not in NULL_RULES})
    nonnull: dict[str, int] = {}
    if counted and element_count:
        row = gated.agg(*[F.count(F.col(c)).alias(f"_c{i}") for i, c in enumerate(counted)]).first()
        nonnull = {c: int(row[f"_c{i}"]) for i, c in enumerate(counted)}
    with_values = {  # a failing not-null rule's values are nulls: nothing to look up
        r.name: r.column for r in rules if failed.get(r.name, 0) and r.type != NOT_NULL
    }
    values: dict[str, list[Any]] = {}
    if with_values:
        types = {f.name: f.dataType for f in gated.schema.fields}
        examples = rule_failure_examples(
            gated.where(F.size(FAILED) > 0), with_values, [], PARTIAL_UNEXPECTED
        ).where(F.col("rule").isin(list(with_values)))
        for r in examples.collect():
            column = with_values[r["rule"]]
            values.setdefault(r["rule"], []).append(_typed(r["value"], types.get(column)))
    results = []
    for r, entry in zip(rules, entries, strict=True):
        unexpected = int(failed.get(r.name, 0))
        if r.type == NOT_NULL:
            shown: list[Any] = [None] * min(unexpected, PARTIAL_UNEXPECTED)
        else:
            shown = values.get(r.name, [])
        results.append(
            RowRuleResult(
                type=r.type,
                kwargs=dict(r.kwargs),
                meta={**(entry.get("meta") or {}), "lakeloop": SOURCE_NOTE},
                element_count=element_count,
                nonnull_count=None if r.type in NULL_RULES else nonnull.get(r.column, 0),
                unexpected_count=unexpected,
                partial_unexpected_list=shown,
            )
        )
    return results
