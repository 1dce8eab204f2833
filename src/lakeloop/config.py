"""One typed configuration: `conf/base/*.yaml` overlaid by `conf/<env>/*.yaml` and `--set` pairs.

Validated at start. Unknown keys and missing values are errors that name the file and the key.
Secrets never live in YAML or `--set`: a key whose dotted path names a credential (see
`is_secret_key`) must be given as `<key>_env` (or, for Spark settings, under
`spark.extra_conf_env`), the name of an environment variable. Its value is read from the
environment only when used, held as a `SecretStr`, and registered with `mask` so that no log line,
run-log row, MLflow tag or report ever shows it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from lakeloop import uris

log = logging.getLogger(__name__)

DEFAULT_ENV = "dev"
MASK = "***"
# A credential word anywhere in a key's dotted path (`spark.hadoop.fs.s3a.secret.key`,
# `kafka.sasl_password`, `options.sasl.jaas.config`, `auth.api_key` ...).
_CREDENTIAL = re.compile(
    r"passw(or)?d|secret|token|credential|access[._-]?key|secret[._-]?key|api[._-]?key"
    r"|private[._-]?key|sasl[._]jaas[._]config",
    re.IGNORECASE,
)
# Settings that name a mechanism, not a credential: the class that provides credentials
# (`spark.hadoop.fs.s3a.aws.credentials.provider`), the token provider of ABFS OAuth.
_NOT_SECRET = re.compile(r"(credentials?|token)[._-]?provider(\.type)?$", re.IGNORECASE)
# Under an auth section any `*_key` / `*.key` is a credential too (`auth.client_key`).
_AUTH_SECTION = re.compile(r"(^|[._])(auth\w*|sasl|ssl|security|credentials?)([._]|$)", re.I)
_KEYISH = re.compile(r"[._-]key$", re.IGNORECASE)
_SECRET_VALUES: set[str] = set()
_CONNECT_URL = re.compile(r"sc://[^/:;\s]+(:\d{1,5})?(/.*)?")


def is_secret_key(path: str) -> bool:
    """True when the dotted key path names a credential. A segment ending in `_env` holds the
    name of an environment variable, not a secret, so paths through one are never secrets."""
    if any(seg.lower().endswith("_env") for seg in path.split(".")):
        return False
    if _NOT_SECRET.search(path):
        return False
    return bool(_CREDENTIAL.search(path) or (_AUTH_SECTION.search(path) and _KEYISH.search(path)))


def register_secret(value: str) -> None:
    """Remember a secret value so that `mask` hides it wherever text leaves the process."""
    if value and len(value) >= 4:  # shorter values would mask ordinary text
        _SECRET_VALUES.add(value)


def mask(text: str) -> str:
    """`text` with every secret value read so far replaced by ***."""
    for value in sorted(_SECRET_VALUES, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def masked_tree(value: Any, path: str = "") -> Any:
    """A JSON-like tree with credential keys' values and secret values replaced by ***."""
    if isinstance(value, dict):
        return {k: masked_tree(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked_tree(v, path) for v in value]
    if value is not None and is_secret_key(path):
        return MASK
    return mask(value) if isinstance(value, str) else value


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
    # JVM options of the driver of every job lakeloop starts (in-process or by spark-submit:
    # the Airflow tasks). A daily job is short: C1-only JIT and the serial GC halve its start
    # (bench/job_start.py: 70 -> 36 s per job); a long-lived driver doing heavy work wants "".
    driver_java_options: str = ""
    # Deployment pins, set by conf/dev and conf/test only (a cluster profile sets neither): the
    # driver's advertised host (`spark.driver.host`) and SPARK_LOCAL_IP for JVMs lakeloop starts.
    driver_host: str | None = None
    local_ip: str | None = None
    # unset: the user cache `lakeloop setup` fills (lakeloop.jars); the former default
    # `.jars/spark` is used when the project has that folder
    jars_dir: Path | None = None
    # Passed verbatim to the builder; keys must start with "spark.".
    extra_conf: dict[str, str] = Field(default_factory=dict)
    # Spark settings whose values are secrets: Spark key -> the environment variable holding
    # the value (e.g. spark.hadoop.fs.s3a.secret.key: AWS_SECRET_ACCESS_KEY).
    extra_conf_env: dict[str, str] = Field(default_factory=dict)
    # Spark Connect: `sc://host:port` of a long-lived server (`python -m lakeloop.connect_server
    # up` starts one with the project's jars). Set, `build_spark` returns a Connect client
    # session and starts no JVM (master, jars and driver options are the server's).
    remote: str | None = None

    @field_validator("remote")
    @classmethod
    def _connect_url(cls, v: str | None) -> str | None:
        if v is not None and not _CONNECT_URL.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a Spark Connect URL: expected sc://host[:port][/;param=value]"
            )
        return v

    @field_validator("extra_conf", mode="before")
    @classmethod
    def _spark_values(cls, v: Any) -> Any:
        """Spark settings are strings; YAML and `--set` read `true`, `4`, `0.5` as scalars:
        given as such, they mean Spark's spelling (`true`, `4`, `0.5`)."""
        if not isinstance(v, dict):
            return v
        return {
            k: str(x).lower()
            if isinstance(x, bool)
            else str(x)
            if isinstance(x, int | float)
            else x
            for k, x in v.items()
        }

    @field_validator("extra_conf", "extra_conf_env")
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
    jars_dir: Path | None = None  # unset: the user cache, as spark.jars_dir
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


class QualitySettings(Strict):
    # GX Data Docs per validated table and date (HTML + vendored assets under the reports
    # folder). Off in conf/test to keep the suite fast; the Data Docs tests turn it on.
    data_docs: bool = True


class AirflowSettings(Strict):
    """The project's own Airflow (`lakeloop airflow up`): its home, where its api-server
    listens, the Spark connection its tasks submit to and the pool that bounds Spark JVMs."""

    home: Path = Path(".airflow")  # AIRFLOW_HOME, relative to the project root
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    dags_folder: Path = Path("dags")
    parallelism: int = Field(2, ge=1)  # LocalExecutor worker processes
    # the Spark connection (AIRFLOW_CONN_<ID>) the tasks' SparkSubmitOperator uses; its master
    # is `spark_master`, or spark.master when unset
    # false: the DAGs do work only when triggered (REST, backfill, the retrain Asset): a run the
    # scheduler creates on its cron is skipped by the lifecycle's first task. For the demo and
    # tests, whose example dates are far from the wall clock (with catchup off, a cron DAG runs
    # its latest interval as soon as it is unpaused). A backfill needs the cron timetable, so
    # the DAGs keep it either way.
    scheduled: bool = True
    spark_conn_id: str = "lakeloop_spark"
    spark_master: str | None = None
    # every Spark task takes one slot: at most this many Spark JVMs at once
    pool: str = "lakeloop_spark"
    pool_slots: int = Field(2, ge=1)
    # the job entry files (spark-submit applications); unset: the checkout's jobs/
    jobs_dir: Path | None = None
    # metadata database; unset: SQLite in `home` (a postgresql+psycopg2:// URL for Postgres,
    # its password through sql_alchemy_conn_env)
    sql_alchemy_conn_env: str | None = None
    start_timeout_s: float = 120.0

    @field_validator("spark_conn_id", "pool")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} must be letters, digits and _")
        return v


class ClusterSettings(Strict):
    """The real cluster `lakeloop cluster up` (infra/cluster.sh) runs on this machine: an HDFS
    NameNode + DataNode, a Spark standalone master + workers and an MLflow tracking server.
    The `cluster` config profile points jobs at it."""

    home: Path = Path(".cluster")  # pid files, logs, HDFS data, MLflow store; project-relative
    host: str = "127.0.0.1"
    hdfs_port: int = Field(9820, ge=1, le=65535)
    spark_port: int = Field(7077, ge=1, le=65535)
    spark_ui_port: int = Field(8090, ge=1, le=65535)  # master web UI + /json status
    workers: int = Field(2, ge=1, le=8)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = "2g"
    mlflow_port: int = Field(5000, ge=1, le=65535)
    # the Hadoop (HDFS daemon) jars; unset: the user cache `lakeloop setup` fills
    hdfs_jars_dir: Path | None = None
    start_timeout_s: float = 180.0


class OnlineStoreSettings(Strict):
    """Where `materialize` writes the latest feature row per entity and `serve` reads it.
    `sqlite` (the embedded default): one SQLite file per project, on the machine that runs
    both (a single-machine deployment). `redis`: see docs/deploy.md (not built in)."""

    kind: Literal["sqlite"] = "sqlite"
    path: Path = Path(".online/online.db")  # sqlite: relative to the project root


class ServingSettings(Strict):
    """`lakeloop serve`: the online scoring server (Starlette + uvicorn)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)  # 0: a free port, printed at start
    max_records: int = Field(1000, ge=1)  # records in one request
    max_body_bytes: int = Field(1_000_000, ge=1024)
    poll_interval_s: float = Field(10.0, gt=0)  # registry alias checks
    model_cache: Path = Path(".serving/models")  # downloaded model artifacts, project-relative
    log_batch_rows: int = Field(500, ge=1)  # the request log's Delta appends: rows per batch
    log_flush_s: float = Field(2.0, gt=0)  # ... or seconds, whichever comes first
    online_store: OnlineStoreSettings = OnlineStoreSettings()


class AppConfig(Strict):
    env: str = DEFAULT_ENV
    project_root: Path
    # a URI: a local path (relative to the project root) or file:///, hdfs://, s3a://, abfss://
    lakehouse_root: str
    pipelines_dir: Path = Path("conf/pipelines")
    expectations_dir: Path = Path("expectations")
    spark: SparkSettings = SparkSettings()
    kafka: KafkaSettings = KafkaSettings()
    mlflow: MlflowSettings = MlflowSettings()
    training: TrainingSettings = TrainingSettings()
    quality: QualitySettings = QualitySettings()
    airflow: AirflowSettings = AirflowSettings()
    cluster: ClusterSettings = ClusterSettings()
    serving: ServingSettings = ServingSettings()

    def path(self, p: Path | str) -> Path:
        """A configured path, resolved against the project root when relative."""
        p = Path(p)
        return p if p.is_absolute() else (self.project_root / p)

    def secret(self, env_var: str | None) -> SecretStr | None:
        """Read a secret from the environment (never from YAML); registered with `mask`."""
        if env_var is None:
            return None
        value = os.environ.get(env_var)
        if value is None:
            raise ConfigError(f"environment variable {env_var} is not set (needed for a secret)")
        register_secret(value)
        return SecretStr(value)

    def redacted(self) -> dict[str, Any]:
        """The config as a dict fit for logs, run logs and reports: every credential key's value
        and every secret value read so far shows as *** (env var names stay: they are not
        secrets)."""
        return masked_tree(self.model_dump(mode="json"))


# Written by `lakeloop init`: marks a project of one's own (which has no pyproject.toml).
PROJECT_MARKER = "lakeloop.project"


def is_project_dir(d: Path) -> bool:
    """conf/base/ beside a `lakeloop.project` marker (`lakeloop init`) or a pyproject.toml (a
    checkout of lakeloop itself)."""
    return (d / "conf" / "base").is_dir() and (
        (d / PROJECT_MARKER).is_file() or (d / "pyproject.toml").is_file()
    )


def find_project_root(start: Path | None = None) -> Path:
    """LAKELOOP_HOME, else the nearest parent that `is_project_dir`, else the source checkout."""
    if os.environ.get("LAKELOOP_HOME"):
        return Path(os.environ["LAKELOOP_HOME"]).resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if is_project_dir(d):
            return d
    pkg_root = Path(__file__).resolve().parents[2]
    if (pkg_root / "conf" / "base").is_dir():
        return pkg_root
    raise ConfigError(
        f"cannot find a lakeloop project (a folder with conf/base/ and {PROJECT_MARKER}) in "
        f"{here} or above: run from inside one, set LAKELOOP_HOME, or create one with "
        "`lakeloop init DIR`"
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a mapping key given twice (YAML lets the later one win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (line {line}; first given on line {seen[key]}): "
                    "the later value would silently win; keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    return parse_yaml(path.read_text(), str(path))


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """A YAML mapping (duplicate keys refused); errors name `source`."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return data


def check_no_literal_secrets(data: dict[str, Any], source: str) -> None:
    """A credential key with a literal value anywhere in `data` (a config file, `--set`, a
    pipeline spec) is an error naming the key and what to write instead."""
    for key, value in _flatten(data).items():
        if isinstance(value, dict) or value is None or not is_secret_key(key):
            continue
        head, _, leaf = key.rpartition(".")
        if head.endswith("extra_conf"):
            fix = f"{head}_env: {{{leaf}: <ENV_VAR_NAME>}}"
        else:
            fix = f"{key}_env: <ENV_VAR_NAME>"
        raise ConfigError(
            f"{source}: key {key} holds a literal secret; secrets come only from environment "
            f"variables: use {fix} instead"
        )


SET_ENV = "LAKELOOP_SET"


def env_set_pairs() -> list[str]:
    """The `KEY=VALUE` pairs of LAKELOOP_SET (a JSON list of strings)."""
    raw = os.environ.get(SET_ENV, "")
    try:
        pairs = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        pairs = None
    if not isinstance(pairs, list) or not all(isinstance(p, str) for p in pairs):
        raise ConfigError(f'{SET_ENV} must be a JSON list of "KEY=VALUE" strings, got {raw!r}')
    return pairs


def parse_set_pairs(pairs: list[str]) -> dict[str, Any]:
    """`["spark.master=local[1]", "lakehouse_root=/tmp/x"]` -> nested dict (values parsed as YAML).
    Under `extra_conf`/`extra_conf_env` the rest of the key is one Spark setting name:
    `spark.extra_conf.spark.sql.ansi.enabled=false`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            if part in ("extra_conf", "extra_conf_env"):
                parts = [*parts[: i + 1], ".".join(parts[i + 1 :])]
                break
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
    """Merge conf/base/*.yaml, conf/<env>/*.yaml and overrides; validate into AppConfig.

    Without `overrides`, `LAKELOOP_SET` (a JSON list of `KEY=VALUE` pairs, as `--set` takes)
    gives them: how `lakeloop airflow up --set ...` hands its overrides to the DAG files and,
    through them, to every job the DAGs run."""
    root = (project_root or find_project_root()).resolve()
    if overrides is None and os.environ.get(SET_ENV):
        overrides = parse_set_pairs(env_set_pairs())
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
        check_no_literal_secrets(data, name)
        merged = _deep_merge(merged, data)
        origins.update({k: name for k in _flatten(data)})
    merged["env"] = env
    merged["project_root"] = str(root)
    try:
        cfg = AppConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, origins, "configuration")) from None
    try:
        lakehouse = uris.normalize(cfg.lakehouse_root, base=root)
    except ValueError as e:
        where = origins.get("lakehouse_root", "(no file sets it)")
        raise ConfigError(f"invalid configuration:\n  {where}: key lakehouse_root: {e}") from None
    return cfg.model_copy(update={"lakehouse_root": lakehouse})


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """`--env` and `--set KEY=VALUE` (see `parse_set_pairs`) on a command that loads config."""
    p.add_argument("--env", default=None, help="config environment (conf/<env>/), default dev")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set spark.shuffle_partitions=2",
    )
