"""MLflow I/O: the tracking/registry URIs from config, the pipeline's experiment, registry
aliases (`champion`, `challenger`, a champion's demotion), loading a registered Spark model,
and a model version's lineage (the training set's Delta table and version)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakeloop import uris
from lakeloop.config import AppConfig, ConfigError
from lakeloop.spec import Pipeline

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
# Tags every training run carries: enough to rebuild its training set with Delta time travel.
TAG_TABLE = "lakeloop.training_set.table"
TAG_PATH = "lakeloop.training_set.path"
TAG_VERSION = "lakeloop.training_set.version"
TAG_ROWS = "lakeloop.training_set.rows"
TAG_RUN_DATE = "lakeloop.run_date"
TAG_RUN_ID = "lakeloop.run_id"
TAG_GIT_SHA = "lakeloop.git_sha"
TAG_SPEC_HASH = "lakeloop.spec_hash"
# A model version tag: why (and when) a champion lost the alias at a later train.
TAG_DEMOTED = "demoted"


class RegistryError(RuntimeError):
    """A registry look-up that cannot be answered (no such model, version or alias)."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve_uri(cfg: AppConfig, uri: str) -> str:
    """`sqlite:///relative/path.db` -> an absolute path under the project root (created)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = cfg.path(uri[len(prefix) :])  # absolute paths stay as they are
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{path}"


def configure(cfg: AppConfig) -> MlflowClient:
    """Point this process's MLflow at the configured tracking + registry stores."""
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.spark"):
        logging.getLogger(name).setLevel(logging.WARNING)
    tracking = resolve_uri(cfg, cfg.mlflow.tracking_uri)
    registry = resolve_uri(cfg, cfg.mlflow.registry_uri or cfg.mlflow.tracking_uri)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


def experiment_id(client: MlflowClient, cfg: AppConfig, pipeline: Pipeline) -> str:
    name = f"lakeloop/{pipeline.name}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if is_server(cfg.mlflow.tracking_uri):
        # a tracking server decides where artifacts go (`--serve-artifacts`: proxied by it)
        return client.create_experiment(name)
    location = cfg.path(cfg.mlflow.artifact_root) / pipeline.name
    location.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=location.resolve().as_uri())


def is_server(uri: str) -> bool:
    """A tracking URI served over HTTP (an MLflow server), not a local store."""
    return uri.split(":", 1)[0].lower() in ("http", "https")


def git_sha(root: Path) -> str:
    """HEAD's sha (+ `-dirty` with uncommitted changes), or `unknown` outside a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _ref(mv) -> ModelRef:
    return ModelRef(mv.name, int(mv.version), mv.run_id)


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    """The version holding `alias`, or None when the model or the alias does not exist."""
    try:
        return _ref(client.get_model_version_by_alias(name, alias))
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def by_version(client: MlflowClient, name: str, version: int) -> ModelRef:
    try:
        return _ref(client.get_model_version(name, str(version)))
    except MlflowException as e:
        raise RegistryError(f"model {name} has no version {version} in the registry") from e


def version_count(client: MlflowClient, name: str) -> int:
    return len(client.search_model_versions(f"name = '{name}'"))


@contextmanager
def no_progress_bar() -> Iterator[None]:
    """MLflow's artifact download draws a progress bar on stderr: not in a job's or the
    server's log."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def load(ref: ModelRef, dfs_tmpdir: str | None = None) -> PipelineModel:
    """The model's Spark pipeline. MLflow downloads the artifact to the driver and, when
    `dfs_tmpdir` is on distributed storage, copies it there for the executors to read."""
    import mlflow.spark  # Spark only where a model is loaded: the registry look-ups need none

    return mlflow.spark.load_model(ref.uri, dfs_tmpdir=dfs_tmpdir)


def dfs_tmpdir(spark: SparkSession, pipeline: Pipeline) -> str:
    """Where Spark writes a model for MLflow to pick up (and reads a downloaded one back): on
    the lakehouse's storage, which every executor sees (MLflow's default /tmp/mlflow is each
    machine's own disk on a cluster). MLflow's Spark flavor copies it through the *default*
    file system (`fs.defaultFS`), so a remote lakehouse must be on it: otherwise a ConfigError
    naming the setting, not MLflow's "Wrong FS" from inside the model upload."""
    tmp = pipeline.uri("_tmp", "mlflow")
    if uris.is_local(tmp):
        return tmp
    default = spark.sparkContext._jsc.hadoopConfiguration().get("fs.defaultFS") or "file:///"
    if not uris.within(uris.normalize(default.rstrip("/") + "/"), tmp):
        raise ConfigError(
            f"the lakehouse {pipeline.root} is not on Spark's default file system "
            f"(fs.defaultFS={default}), through which MLflow stages Spark models: set "
            f"spark.extra_conf.spark.hadoop.fs.defaultFS to its file system (e.g. "
            f"{uris.scheme(tmp)}://{urlsplit(tmp).netloc})"
        )
    return tmp


def set_alias(client: MlflowClient, ref: ModelRef, alias: str) -> None:
    client.set_registered_model_alias(ref.name, alias, str(ref.version))


def delete_alias(client: MlflowClient, name: str, alias: str) -> None:
    if by_alias(client, name, alias) is not None:
        client.delete_registered_model_alias(name, alias)


def demote(client: MlflowClient, ref: ModelRef, reason: str) -> None:
    """Take the `champion` alias from `ref` (if it still holds it) and tag the version with
    why (`TAG_DEMOTED`)."""
    client.set_model_version_tag(ref.name, str(ref.version), TAG_DEMOTED, reason)
    current = by_alias(client, ref.name, CHAMPION)
    if current is not None and current.version == ref.version:
        client.delete_registered_model_alias(ref.name, CHAMPION)


@dataclass(frozen=True)
class Lineage:
    """Where a model version's training set came from."""

    table: str
    path: str
    delta_version: int
    rows: int
    run_date: str
    git_sha: str
    spec_hash: str


def lineage(client: MlflowClient, ref: ModelRef) -> Lineage:
    tags = client.get_run(ref.run_id).data.tags
    missing = [t for t in (TAG_PATH, TAG_VERSION, TAG_ROWS) if t not in tags]
    if missing:
        raise RegistryError(
            f"model {ref.name} v{ref.version} (run {ref.run_id}) has no lineage tags {missing}: "
            "it was not trained by lakeloop"
        )
    return Lineage(
        table=tags.get(TAG_TABLE, ""),
        path=tags[TAG_PATH],
        delta_version=int(tags[TAG_VERSION]),
        rows=int(tags[TAG_ROWS]),
        run_date=tags.get(TAG_RUN_DATE, ""),
        git_sha=tags.get(TAG_GIT_SHA, ""),
        spec_hash=tags.get(TAG_SPEC_HASH, ""),
    )
