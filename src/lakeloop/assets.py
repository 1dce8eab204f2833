"""The static files GX's Data Docs load from CDNs, vendored once per user for offline pages.

GX 1.24.1 renders every Data Docs page with `<script>`/`<link>` tags pointing at public CDNs
(Bootstrap, bootstrap-table, jQuery, Popper, Font Awesome, bootstrap-datepicker,
bootstrap-dark, Vega/Vega-Lite/Vega-Embed). Opened where there is no internet (as on most
clusters) such a page is unstyled and its tables stay empty. `lakeloop setup` fetches the same
versions once with `npm pack` (npm checks each tarball's integrity) into a per-user cache::

    ~/.cache/lakeloop/assets/<package>@<version>/<path inside the package>   (+ .stamp)

`$LAKELOOP_ASSETS_CACHE` replaces `~/.cache/lakeloop/assets` (else
`$XDG_CACHE_HOME/lakeloop/assets`). Only the files the pages use are kept. A package whose
stamp matches is not fetched again, so a second `setup` does nothing. Where GX pins a file
with a Subresource Integrity hash (Popper, Bootstrap's JS), the vendored file must hash to it.
`lakeloop.quality.datadocs` copies the files into each Data Docs site and rewrites the links.

`CDN_FILES` maps each CDN address of GX's templates to a package file; a test reads the
installed GX templates and fails on an address this table lacks (e.g. after a GX upgrade).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lakeloop.jars import user_cache

log = logging.getLogger(__name__)

FIX_COMMAND = "lakeloop setup"
CACHE_ENV = "LAKELOOP_ASSETS_CACHE"
STAMP = ".stamp"


@dataclass(frozen=True)
class Package:
    name: str  # as npm names it, e.g. "@fortawesome/fontawesome-free"
    version: str  # exact
    files: tuple[str, ...]  # paths inside the package that are kept
    site_files: tuple[str, ...] = ()  # extra files a page needs beside the linked one (fonts)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def folder(self) -> str:
        """`fortawesome-fontawesome-free@6.6.0`: the package's folder in the cache and sites."""
        return f"{self.name.lstrip('@').replace('/', '-')}@{self.version}"


@dataclass(frozen=True)
class CdnFile:
    url: str  # exactly as GX's templates write it
    package: Package
    path: str  # the same file inside the npm package
    integrity: str | None = None  # GX's SRI hash for it, when the template has one


_FA_FONTS = tuple(
    f"webfonts/fa-{n}.{ext}"
    for n in ("brands-400", "regular-400", "solid-900", "v4compatibility")
    for ext in ("woff2", "ttf")
)
BOOTSTRAP = Package(
    "bootstrap", "4.3.1", ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js")
)
_FILTER_CONTROL = "dist/extensions/filter-control/bootstrap-table-filter-control"
BOOTSTRAP_TABLE = Package(
    "bootstrap-table",
    "1.19.1",
    (
        "dist/bootstrap-table.min.css",
        "dist/bootstrap-table.min.js",
        f"{_FILTER_CONTROL}.min.js",
        f"{_FILTER_CONTROL}.css",
    ),
)
# GX's pages link filter-control's CSS of 1.19.0 (the rest of bootstrap-table is 1.19.1).
BOOTSTRAP_TABLE_1190 = Package(
    "bootstrap-table", "1.19.0", (f"{_FILTER_CONTROL}.css", f"{_FILTER_CONTROL}.min.css")
)
JQUERY = Package("jquery", "3.7.1", ("dist/jquery.min.js",))
POPPER = Package("popper.js", "1.12.9", ("dist/umd/popper.min.js",))
FONT_AWESOME = Package(
    "@fortawesome/fontawesome-free",
    "6.6.0",
    ("css/all.min.css", *_FA_FONTS),
    # The CSS loads ../webfonts/*; browsers take the woff2 (the ttf is only a fallback).
    site_files=tuple(f for f in _FA_FONTS if f.endswith(".woff2")),
)
DATEPICKER = Package(
    "bootstrap-datepicker",
    "1.9.0",
    ("dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js"),
)
BOOTSTRAP_DARK = Package(
    "@forevolve/bootstrap-dark", "1.1.0", ("dist/css/bootstrap-prefers-dark.css",)
)
# GX asks for the newest vega@5 / vega-lite@5 / vega-embed@6; these are the newest of each.
VEGA = Package("vega", "5.33.1", ("build/vega.min.js",))
VEGA_LITE = Package("vega-lite", "5.23.0", ("build/vega-lite.min.js",))
VEGA_EMBED = Package("vega-embed", "6.29.0", ("build/vega-embed.min.js",))

PACKAGES: tuple[Package, ...] = (
    BOOTSTRAP,
    BOOTSTRAP_TABLE,
    BOOTSTRAP_TABLE_1190,
    JQUERY,
    POPPER,
    FONT_AWESOME,
    DATEPICKER,
    BOOTSTRAP_DARK,
    VEGA,
    VEGA_LITE,
    VEGA_EMBED,
)

_BT = "https://unpkg.com/bootstrap-table"
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
_JSDELIVR = "https://cdn.jsdelivr.net/npm"
CDN_FILES: tuple[CdnFile, ...] = (
    CdnFile(
        "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
        BOOTSTRAP,
        "dist/css/bootstrap.min.css",
    ),
    CdnFile(
        "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
        BOOTSTRAP,
        "dist/js/bootstrap.min.js",
        "sha384-JjSmVgyd0p3pXB1rRibZUAYoIIy6OrQ6VrjIEaFf/nJGzIxFDsf4x0xIM+B07jRM",
    ),
    CdnFile(
        f"{_BT}@1.19.1/dist/bootstrap-table.min.css",
        BOOTSTRAP_TABLE,
        "dist/bootstrap-table.min.css",
    ),
    CdnFile(
        f"{_BT}@1.19.1/dist/bootstrap-table.min.js", BOOTSTRAP_TABLE, "dist/bootstrap-table.min.js"
    ),
    CdnFile(f"{_BT}@1.19.1/{_FILTER_CONTROL}.min.js", BOOTSTRAP_TABLE, f"{_FILTER_CONTROL}.min.js"),
    CdnFile(f"{_BT}@1.19.0/{_FILTER_CONTROL}.css", BOOTSTRAP_TABLE_1190, f"{_FILTER_CONTROL}.css"),
    CdnFile(
        f"{_BT}@1.19.0/{_FILTER_CONTROL}.min.css",
        BOOTSTRAP_TABLE_1190,
        f"{_FILTER_CONTROL}.min.css",
    ),
    CdnFile("https://code.jquery.com/jquery-3.7.1.min.js", JQUERY, "dist/jquery.min.js"),
    CdnFile(
        f"{_CDNJS}/popper.js/1.12.9/umd/popper.min.js",
        POPPER,
        "dist/umd/popper.min.js",
        "sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q",
    ),
    CdnFile(f"{_CDNJS}/font-awesome/6.6.0/css/all.min.css", FONT_AWESOME, "css/all.min.css"),
    CdnFile(
        f"{_CDNJS}/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",
        DATEPICKER,
        "dist/css/bootstrap-datepicker.min.css",
    ),
    CdnFile(
        f"{_CDNJS}/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",
        DATEPICKER,
        "dist/js/bootstrap-datepicker.min.js",
    ),
    CdnFile(
        f"{_JSDELIVR}/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
        BOOTSTRAP_DARK,
        "dist/css/bootstrap-prefers-dark.css",
    ),
    CdnFile(f"{_JSDELIVR}/vega@5", VEGA, "build/vega.min.js"),
    CdnFile(f"{_JSDELIVR}/vega-lite@5", VEGA_LITE, "build/vega-lite.min.js"),
    CdnFile(f"{_JSDELIVR}/vega-embed@6", VEGA_EMBED, "build/vega-embed.min.js"),
)
BY_URL: dict[str, CdnFile] = {f.url: f for f in CDN_FILES}


class MissingAssetsError(RuntimeError):
    """The asset cache lacks a package (`lakeloop setup` was not run, or was interrupted)."""


class AssetsSetupError(RuntimeError):
    """The assets could not be fetched (no npm, no registry, an integrity mismatch)."""


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """$LAKELOOP_ASSETS_CACHE, else $XDG_CACHE_HOME/lakeloop/assets, else
    ~/.cache/lakeloop/assets."""
    return user_cache("assets", CACHE_ENV, environ)


def _stamp_for(package: Package) -> dict[str, object]:
    return {"package": package.name, "version": package.version, "files": list(package.files)}


def is_complete(package: Package, root: Path | None = None) -> bool:
    """The package's folder has a stamp for this name, version and file list, and the files."""
    folder = (root or cache_root()) / package.folder
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
    return {k: stamp.get(k) for k in ("package", "version", "files")} == _stamp_for(
        package
    ) and all((folder / f).is_file() for f in package.files)


def missing(root: Path | None = None) -> list[Package]:
    return [p for p in PACKAGES if not is_complete(p, root)]


def require(root: Path | None = None) -> Path:
    """The cache root when every package is there; else MissingAssetsError saying what to run."""
    root = root or cache_root()
    absent = missing(root)
    if absent:
        raise MissingAssetsError(
            f"the Data Docs' static assets are not in {root} (missing: "
            f"{', '.join(p.spec for p in absent)}); run `{FIX_COMMAND}` once (`make setup` in a "
            f"lakeloop checkout does it too) to fetch them with npm"
        )
    return root


def sri(path: Path) -> str:
    """The Subresource Integrity value (sha384) of a file."""
    digest = hashlib.sha384(path.read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode()


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetsSetupError(
            "npm is not on PATH: lakeloop fetches the Data Docs' CSS/JS/fonts (Bootstrap, "
            "jQuery, Font Awesome, Vega, ...) with `npm pack`. Install Node.js with npm (e.g. "
            f"`apt-get install npm`) and run `{FIX_COMMAND}` again"
        )
    return npm


def _pack(packages: list[Package], dest: Path) -> dict[str, Path]:
    """`npm pack` every package into `dest` in one call: package spec -> tarball."""
    cmd = [_npm(), "pack", "--json", "--pack-destination", str(dest), *(p.spec for p in packages)]
    log.info("fetching the Data Docs assets: %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln.strip() for ln in proc.stderr.splitlines() if "ERR" in ln]
        raise AssetsSetupError(
            f"npm pack failed (exit {proc.returncode}) for "
            f"{', '.join(p.spec for p in packages)}: "
            f"{' | '.join(errors)[:1500] or proc.stderr[-1500:]}"
        )
    try:
        packed = json.loads(proc.stdout)
    except ValueError as e:
        raise AssetsSetupError(f"npm pack printed no JSON: {proc.stdout[-500:]!r}") from e
    by_spec = {f"{p['name']}@{p['version']}": dest / p["filename"] for p in packed}
    absent = [p.spec for p in packages if not by_spec.get(p.spec, Path("/nonexistent")).is_file()]
    if absent:
        raise AssetsSetupError(f"npm pack did not write a tarball for {', '.join(absent)}")
    return by_spec


def _extract(package: Package, tarball: Path, out: Path) -> None:
    """The package's kept files, from `package/<path>` in the tarball, into `out`."""
    wanted = {f"package/{f}": f for f in package.files}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            rel = wanted.pop(member.name, None)
            if rel is None or not member.isfile():
                continue
            target = out / PurePosixPath(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if wanted:
        raise AssetsSetupError(
            f"{package.spec} has no {', '.join(sorted(wanted.values()))} (its tarball changed?)"
        )
    for cdn in CDN_FILES:
        if cdn.package == package and cdn.integrity and sri(out / cdn.path) != cdn.integrity:
            raise AssetsSetupError(
                f"{package.spec} {cdn.path} does not match the integrity GX pins for {cdn.url} "
                f"({sri(out / cdn.path)} != {cdn.integrity})"
            )


@dataclass(frozen=True)
class AssetsResult:
    path: Path
    packages: int
    fetched: list[str]  # package specs fetched now; empty: the cache was complete
    bytes: int


def _size(root: Path) -> int:
    return sum(
        (root / p.folder / f).stat().st_size
        for p in PACKAGES
        for f in p.files
        if (root / p.folder / f).is_file()
    )


def setup(force: bool = False, root: Path | None = None) -> AssetsResult:
    """`lakeloop setup`: every package into the cache; nothing to do when all stamps match."""
    root = root or cache_root()
    todo = list(PACKAGES) if force else missing(root)
    if not todo:
        log.debug("Data Docs assets up to date in %s: nothing to do", root)
        return AssetsResult(root, len(PACKAGES), [], _size(root))
    root.mkdir(parents=True, exist_ok=True)
    # Fetch and unpack beside the cache, then rename each folder into place: a concurrent
    # reader or a second `setup` never sees half a package.
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        work = Path(tmp)
        (work / "tarballs").mkdir()
        tarballs = _pack(todo, work / "tarballs")
        for package in todo:
            out = work / package.folder
            _extract(package, tarballs[package.spec], out)
            (out / STAMP).write_text(json.dumps(_stamp_for(package)) + "\n")
            target = root / package.folder
            if target.exists():
                target.rename(work / f"stale-{package.folder}")
            try:
                out.rename(target)
            except OSError:  # another setup put the folder there meanwhile
                if not is_complete(package, root):
                    raise
    log.info("Data Docs assets fetched into %s: %s", root, ", ".join(p.spec for p in todo))
    return AssetsResult(root, len(PACKAGES), [p.spec for p in todo], _size(root))
