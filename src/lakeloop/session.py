"""The one place that builds the SparkSession."""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from lakeloop import uris
from lakeloop.config import AppConfig
from lakeloop.jars import REQUIRED_CLASSES, MissingJarsError, spark_jars, spark_jars_dir

log = logging.getLogger(__name__)
_REDACT = "(?i)secret|password|passwd|token|credential|access[.]key|jaas|api[._]?key"


def session_conf(cfg: AppConfig, launches_jvm: bool = True) -> dict[str, str]:
    """Every Spark setting lakeloop relies on, from the config. `launches_jvm`: lakeloop starts
    the JVM, so the Delta and Kafka jars come from the jars folder (checked: a clear error when
    missing) and the driver's JVM options from the config; off under spark-submit, where
    `--jars`/`spark.jars`/`--driver-java-options` of the deployment give them."""
    conf = {
        "spark.app.name": cfg.spark.app_name,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.ui.enabled": str(cfg.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": cfg.spark.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # Whole-stage code over the JVM's 8000-byte JIT limit runs interpreted; the bronze
        # error-reason expressions produce such methods. Above this size Spark splits the stage
        # instead (measured: CSV bronze read 4.0 -> 2.0 CPU-s per 700k rows).
        "spark.sql.codegen.hugeMethodLimit": "8000",
        # PySpark records the Python call site of every Column operation in the JVM (for the
        # "DataFrame query context" of an error): 8 more py4j round trips per operation, ~75%
        # of the ~2,300 calls that build ingest_kafka's plan of a batch (~6,000 for
        # ingest_files'). Spark's own switch turns it off; `extra_conf` can turn it back on.
        "spark.python.sql.dataFrameDebugging.enabled": "false",
        "spark.sql.warehouse.dir": uris.join(cfg.lakehouse_root, "_warehouse"),
        # Spark masks conf values (UI, event log, errors) whose key matches redaction.regex and
        # data source options (plans, EXPLAIN) matching redaction.options.regex: add the
        # credential words lakeloop knows (Kafka's sasl.jaas.config holds the password).
        "spark.redaction.regex": _REDACT,
        "spark.sql.redaction.options.regex": f"(?i)url|{_REDACT[4:]}",
    }
    if launches_jvm:
        conf["spark.jars"] = ",".join(str(j) for j in spark_jars(spark_jars_dir(cfg)))
        if cfg.spark.driver_java_options:  # the driver JVM lakeloop itself launches
            conf["spark.driver.extraJavaOptions"] = cfg.spark.driver_java_options
    if cfg.spark.driver_host:
        conf["spark.driver.host"] = cfg.spark.driver_host
    conf.update(cfg.spark.extra_conf)
    for key, env_var in cfg.spark.extra_conf_env.items():
        conf[key] = cfg.secret(env_var).get_secret_value()  # type: ignore[union-attr]
    return conf


def launched_by_spark_submit() -> bool:
    """True inside `spark-submit app.py`: the JVM exists already and owns --master."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(cfg: AppConfig, app_name: str | None = None) -> SparkSession:
    """The session for `cfg`. Started here (a test, the demo, `lakeloop run`): master and jars
    from the config, jars checked. Under spark-submit the JVM exists already: its `--master`,
    `--jars` and `--conf` win, and the Delta/Kafka classes are checked once it is up. With
    `spark.remote` set: a Spark Connect client session of that server (`connect_session`)."""
    if cfg.spark.remote:
        return connect_session(cfg)
    if cfg.spark.local_ip:
        os.environ.setdefault("SPARK_LOCAL_IP", cfg.spark.local_ip)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    builder = SparkSession.builder
    submitted = launched_by_spark_submit()
    conf = session_conf(cfg, launches_jvm=not submitted)
    if app_name:
        conf["spark.app.name"] = app_name
    if not submitted:
        builder = builder.master(cfg.spark.master)
        if cfg.spark.master.startswith("local"):
            # Python workers run on this machine: this interpreter (which imports lakeloop),
            # not PySpark's default `python3` from PATH (a cluster sets spark.pyspark.python)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if submitted:
        check_classes(spark)
    log.info(
        "spark %s session %s master=%s",
        spark.version,
        spark.sparkContext.appName,
        spark.sparkContext.master,
    )
    return spark


# Settings a Connect server takes at its start only (lakeloop.connect_server passes them):
# a client session cannot change them.
SERVER_ONLY = frozenset(
    {
        "spark.sql.extensions",
        "spark.sql.catalog.spark_catalog",
        "spark.sql.warehouse.dir",
    }
)


def connect_conf(cfg: AppConfig) -> dict[str, str]:
    """The settings a Connect client sets on its session on the server: lakeloop's SQL and
    Delta session settings (`spark.sql.*`, `spark.databricks.*`). The rest (jars, extensions,
    driver memory, credentials) the server got at its start."""
    return {
        k: v
        for k, v in session_conf(cfg, launches_jvm=False).items()
        if k.startswith(("spark.sql.", "spark.databricks.")) and k not in SERVER_ONLY
    }


def connect_session(cfg: AppConfig) -> SparkSession:
    """A Spark Connect client session of the server at `spark.remote`; no JVM starts here.

    ConnectServerError naming the URL and how to start the server when nothing answers there
    (checked before the client is built: its gRPC retries would take minutes to give up).
    PySpark then marks the whole process as Connect (SPARK_CONNECT_MODE_ENABLED): a classic
    session must not be built in the same process afterwards. Over Connect there is no
    `sparkContext`, py4j or `newSession`, and DeltaTable's API needs Delta's Connect server
    plugin, which Delta 4.4 does not publish for Spark 4.1 (bench/connect.py lists what works)."""
    from lakeloop.connect_server import ConnectServerError, address, start_hint
    from lakeloop.procs import port_open

    url = cfg.spark.remote
    assert url is not None
    host, port = address(url)
    if not port_open(host, port, timeout=2.0):
        raise ConnectServerError(
            f"no Spark Connect server answers at {url} (spark.remote): {start_hint(cfg)}, "
            "or unset spark.remote to start a Spark JVM in this process"
        )
    builder = SparkSession.builder.remote(url)
    for k, v in connect_conf(cfg).items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
        version = spark.version
    except Exception as e:  # gRPC: the port answers but is not a Connect server, or it failed
        raise ConnectServerError(
            f"the Spark Connect server at {url} (spark.remote) did not accept a session: "
            f"{str(e).splitlines()[0][:500]}; {start_hint(cfg)}"
        ) from e
    log.info("spark %s session connect remote=%s", version, url)
    return spark


def check_classes(spark: SparkSession) -> None:
    """MissingJarsError naming the classes the running JVM lacks (Delta, the Kafka source)."""
    jvm = spark.sparkContext._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    missing = []
    for name in REQUIRED_CLASSES:
        try:
            jvm.java.lang.Class.forName(name, False, loader)
        except Exception:  # py4j wraps ClassNotFoundException
            missing.append(name)
    if missing:
        raise MissingJarsError(
            f"the Spark JVM lacks {', '.join(missing)}: under spark-submit give the Delta and "
            "Kafka jars with --jars or spark.jars (the folder `lakeloop setup` prints; "
            "on a cluster, their copies on the cluster's storage)"
        )


def isolated(spark: SparkSession) -> SparkSession:
    """A new session on the same SparkContext (same conf, jars and cache), for MLlib fits.

    Spark 4.1's classification training summaries hold their SparkSession, and a session on
    which `DataFrame.observe` was used (ingest_files counts rows that way) holds a
    non-serializable ObservationManager; the model's prediction UDF then fails with "Task not
    serializable". A session of its own keeps training independent of what ran before it in
    the same process (the demo, the tests, a notebook)."""
    return spark.newSession()
