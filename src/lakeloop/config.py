"""One typed configuration: `conf/base/*.yaml` overlaid by `conf/<env>/*.yaml` and `--set` pairs.

Validated at start. Unknown keys and missing values are errors that name the file and the key.
Secrets never live in YAML: a key that looks like a secret must be given as `<key>_env`, the name
of an environment variable, and is read from the environment only when used.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

DEFAULT_ENV = "dev"
_SECRET_KEY = re.compile(r"(password|secret|token|api_key|credential)s?$", re.IGNORECASE)


class ConfigError(ValueError):
    """Configuration or pipeline spec is invalid. The message names the file and the key."""


class SpecError(ConfigError):
    """The pipeline spec refers to something the data does not have (an unknown column, a SQL
    expression Spark cannot resolve). Raised by transforms; the message names the spec key
    (e.g. `features.columns.total_rooms`) and the column. Jobs exit with code 2 on it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SparkSettings(Strict):
    master: str = "local[2]"
    app_name: str = "lakeloop"
    shuffle_partitions: int = Field(4, ge=1)
    ui_enabled: bool = False
    driver_memory: str = "2g"
    jars_dir: Path = Path(".jars/spark")
    # Passed verbatim to the builder; keys must start with "spark.".
    extra_conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("extra_conf")
    @classmethod
    def _spark_keys(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not k.startswith("spark.")]
        if bad:
            raise ValueError(f"keys must start with 'spark.': {bad}")
        return v


class BrokerSettings(Strict):
    """The embedded single-node KRaft broker that `lakeloop kafka up` runs."""

    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    data_dir: Path = Path(".kafka")
    jars_dir: Path = Path(".jars/kafka")
    heap: str = "512m"
    num_partitions: int = Field(2, ge=1)
    start_timeout_s: float = 60.0


class KafkaSettings(Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username_env: str | None = None
    sasl_password_env: str | None = None
    broker: BrokerSettings = BrokerSettings()


class MlflowSettings(Strict):
    """MLflow tracking + registry. A relative `sqlite:///` path resolves against the project
    root; runs' artifacts (the models) go under `artifact_root` unless the experiment exists."""

    tracking_uri: str = "sqlite:///.mlflow/mlflow.db"
    registry_uri: str | None = None  # default: the tracking URI
    artifact_root: Path = Path(".mlflow/artifacts")


class TrainingSettings(Strict):
    parallelism: int = Field(2, ge=1, le=64)  # models CrossValidator fits at once


class AppConfig(Strict):
    env: str = DEFAULT_ENV
    project_root: Path
    lakehouse_root: Path
    pipelines_dir: Path = Path("conf/pipelines")
    expectations_dir: Path = Path("expectations")
    spark: SparkSettings = SparkSettings()
    kafka: KafkaSettings = KafkaSettings()
    mlflow: MlflowSettings = MlflowSettings()
    training: TrainingSettings = TrainingSettings()

    def path(self, p: Path | str) -> Path:
        """A configured path, resolved against the project root when relative."""
        p = Path(p)
        return p if p.is_absolute() else (self.project_root / p)

    def secret(self, env_var: str | None) -> str | None:
        """Read a secret from the environment (never from YAML)."""
        if env_var is None:
            return None
        value = os.environ.get(env_var)
        if value is None:
            raise ConfigError(f"environment variable {env_var} is not set (needed for a secret)")
        return value

    def redacted(self) -> dict[str, Any]:
        """The config as a dict fit for logs: no secret values (only env var names are held)."""
        return self.model_dump(mode="json")


def find_project_root(start: Path | None = None) -> Path:
    """LAKELOOP_HOME, else the nearest parent holding conf/base, else the source checkout."""
    if os.environ.get("LAKELOOP_HOME"):
        return Path(os.environ["LAKELOOP_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "conf" / "base").is_dir() and (d / "pyproject.toml").is_file():
            return d
    pkg_root = Path(__file__).resolve().parents[2]
    if (pkg_root / "conf" / "base").is_dir():
        return pkg_root
    raise ConfigError(
        "cannot find the lakeloop project (a folder with conf/base/); "
        "run from the project or set LAKELOOP_HOME"
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out[key] = v
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _check_no_literal_secrets(data: dict[str, Any], source: str) -> None:
    for key, value in _flatten(data).items():
        leaf = key.rsplit(".", 1)[-1]
        if _SECRET_KEY.search(leaf) and not leaf.endswith("_env") and value is not None:
            raise ConfigError(
                f"{source}: key {key} holds a secret in the file; secrets come only from "
                f"environment variables: use {leaf}_env: <ENV_VAR_NAME> instead"
            )


def parse_set_pairs(pairs: list[str]) -> dict[str, Any]:
    """`["spark.master=local[1]", "lakehouse_root=/tmp/x"]` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else ""
    return out


def format_validation_error(err: ValidationError, origins: dict[str, str], what: str) -> str:
    lines = [f"invalid {what}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        src = origins.get(key)
        if src is None:  # the nearest parent key that some file set
            parts = key.split(".")
            while parts and src is None:
                parts.pop()
                src = origins.get(".".join(parts))
        where = src or "(no file sets it)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "missing value"
        else:
            msg = e["msg"]
        lines.append(f"  {where}: key {key}: {msg}")
    return "\n".join(lines)


def load_config(
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
    project_root: Path | None = None,
) -> AppConfig:
    """Merge conf/base/*.yaml, conf/<env>/*.yaml and overrides; validate into AppConfig."""
    root = (project_root or find_project_root()).resolve()
    env = env or os.environ.get("LAKELOOP_ENV", DEFAULT_ENV)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", env):
        raise ConfigError(f"environment name {env!r} must be letters, digits, - or _")
    conf_dir = root / "conf"
    env_dir = conf_dir / env
    if env != "base" and not env_dir.is_dir():
        raise ConfigError(f"unknown environment {env!r}: {env_dir} does not exist")
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    sources = [
        (str(p.relative_to(root)), read_yaml(p)) for p in sorted((conf_dir / "base").glob("*.yaml"))
    ]
    sources += [(str(p.relative_to(root)), read_yaml(p)) for p in sorted(env_dir.glob("*.yaml"))]
    if overrides:
        sources.append(("--set", overrides))
    for name, data in sources:
        _check_no_literal_secrets(data, name)
        merged = _deep_merge(merged, data)
        origins.update({k: name for k in _flatten(data)})
    merged["env"] = env
    merged["project_root"] = str(root)
    try:
        cfg = AppConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, origins, "configuration")) from None
    lakehouse = cfg.path(cfg.lakehouse_root).resolve()
    return cfg.model_copy(update={"lakehouse_root": lakehouse})
