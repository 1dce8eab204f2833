"""`make dist`: the lakeloop package for clusters.

    dist/lakeloop-<version>-py3-none-any.whl   pip install it where pip is available
    dist/lakeloop-<version>.zip                spark-submit --py-files it where it is not

The wheel is built from a copy of the checkout with its symlinks resolved (the `lakeloop init`
templates link to conf/ and expectations/), so nothing is written into the checkout (no build/,
no egg-info churn). The zip holds exactly the wheel's `lakeloop/` package (with its package data:
templates, poms, resources) and its .dist-info (so `importlib.metadata.version("lakeloop")`
answers from the zip).

Only lakeloop goes into the zip: its dependencies with compiled extensions (pydantic-core,
pyyaml's C loader, pandas, numpy...) cannot be imported from a zip archive, and pyspark is the
cluster's own. The Python on the executors and the driver must have those installed (the same
pins as pyproject.toml); the zip only ships lakeloop's own code.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lakeloop"


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def build_wheel(out: Path) -> Path:
    """`pip wheel --no-deps` of a symlink-free copy of the checkout into `out`."""
    wheel = out / f"{PACKAGE}-{version()}-py3-none-any.whl"
    wheel.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="lakeloop-dist-") as tmp:
        src = Path(tmp) / "lakeloop"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(
            ROOT / "src",
            src / "src",
            symlinks=False,  # the templates' links to conf/ and expectations/ become copies
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",  # the venv's setuptools: no network needed
                "-q",
                "-w",
                str(out),
                str(src),
            ],
            check=True,
        )
    if not wheel.is_file():
        raise SystemExit(f"pip wheel did not write {wheel}")
    return wheel


def build_zip(wheel: Path, out: Path) -> Path:
    """The wheel's lakeloop/ package + .dist-info as a --py-files archive."""
    target = out / f"{PACKAGE}-{version()}.zip"
    tmp = target.with_suffix(".zip.tmp")
    keep = (f"{PACKAGE}/", f"{PACKAGE}-{version()}.dist-info/")
    with zipfile.ZipFile(wheel) as whl, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for info in whl.infolist():
            if info.filename.startswith(keep):
                z.writestr(info, whl.read(info))
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="infra/dist.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(args.out.resolve())
    archive = build_zip(wheel, args.out.resolve())
    with zipfile.ZipFile(archive) as z:
        n = len(z.namelist())
    for path in (wheel, archive):
        sys.stdout.write(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ")
        sys.stdout.write(f"({path.stat().st_size / 1e6:.1f} MB)\n")
    sys.stdout.write(f"{archive.name}: {n} files; use: spark-submit --py-files {archive} ...\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
