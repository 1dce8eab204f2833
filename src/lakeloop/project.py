"""`lakeloop init DIR --example houses|blank`: a project of one's own, anywhere.

Writes `conf/base`, `conf/dev`, `conf/test` (lakeloop's own configuration, the same files this
repository runs with), `conf/pipelines/<spec>.yaml`, `expectations/<spec>/`, a README that says
how to run it, `dags/` (the DAG file that builds Airflow DAGs from the specs: `lakeloop airflow
up`), `jobs/` (the spark-submit entry files the DAGs run), a `.gitignore`, `docs/spec.schema.json` (for editors: the specs point at it), and the `lakeloop.project` marker by which `lakeloop` finds the
project from any folder inside it (config.find_project_root). The templates ship in the package
(`resources/project/`, `resources/examples/<example>/`); in a checkout their conf/ and
expectations/ are symlinks to the repository's own files, so they cannot drift.

The JVM jars are not part of a project: `lakeloop setup` resolves them once per user
(lakeloop.jars).
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from lakeloop import specdoc
from lakeloop.config import PROJECT_MARKER
from lakeloop.jars import RESOURCES

log = logging.getLogger(__name__)

EXAMPLES = ("houses", "blank")
_COMMON = RESOURCES / "project"
# files whose name cannot start with a dot in package data
_RENAMES = {"gitignore": ".gitignore"}


class ProjectError(ValueError):
    """The project cannot be created as asked (a non-empty folder, an unknown example)."""


@dataclass(frozen=True)
class InitResult:
    root: Path
    example: str
    files: tuple[Path, ...]  # relative to root, in the order written


def _walk(node: Traversable, rel: Path = Path()) -> list[tuple[Path, Traversable]]:
    out: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        name = _RENAMES.get(child.name, child.name) if not rel.parts else child.name
        if child.is_dir():
            out += _walk(child, rel / name)
        else:
            out.append((rel / name, child))
    return out


def template_files(example: str) -> list[tuple[Path, Traversable]]:
    """(path in the new project, packaged file) for the common files and the example's."""
    if example not in EXAMPLES:
        raise ProjectError(f"unknown example {example!r}; choose one of {', '.join(EXAMPLES)}")
    files = dict(_walk(_COMMON))
    files.update(_walk(RESOURCES / "examples" / example))
    return sorted(files.items())


def _marker_text(example: str) -> str:
    try:
        version = importlib.metadata.version("lakeloop")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree only
        version = "unknown"
    return (
        "# A lakeloop project: `lakeloop` run in this folder or below finds conf/ here.\n"
        f"# Created by `lakeloop init --example {example}` (lakeloop {version}).\n"
        f"example: {example}\n"
    )


def init_project(target: Path, example: str = "houses", force: bool = False) -> InitResult:
    """Write the example project into `target` (created if missing). A folder that holds
    anything is refused unless `force`; then the template's files are overwritten and every
    other file is left alone."""
    files = template_files(example)
    target = target.expanduser()
    if target.exists() and not target.is_dir():
        raise ProjectError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ProjectError(
            f"{target} is not empty; choose a new folder, or pass --force to write the "
            f"{example} example into it (files of the same name are overwritten)"
        )
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rel, src in files:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
        written.append(rel)
    # the spec's JSON Schema, where the specs' `yaml-language-server: $schema=` line points
    schema = Path("docs/spec.schema.json")
    (target / schema).parent.mkdir(parents=True, exist_ok=True)
    (target / schema).write_text(specdoc.schema_text())
    written.append(schema)
    (target / PROJECT_MARKER).write_text(_marker_text(example))
    written.append(Path(PROJECT_MARKER))
    log.debug("lakeloop project (%s example) written to %s", example, target.resolve())
    return InitResult(target.resolve(), example, tuple(written))
