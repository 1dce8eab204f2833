"""What every job's main() shares: arguments, config, the session, clear errors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Observation, SparkSession

from lakeloop import logs, storage
from lakeloop.config import ConfigError, load_config, parse_set_pairs
from lakeloop.connect_server import ConnectServerError
from lakeloop.jars import MissingJarsError
from lakeloop.session import build_spark
from lakeloop.spec import Pipeline, is_remote_spec, load_pipeline, load_pipeline_text

log = logging.getLogger(__name__)


class JobError(RuntimeError):
    """A failure with a message meant for the person running the job."""


OBSERVED_WAIT_S = 30.0


def observed(obs: Observation, timeout_s: float = OBSERVED_WAIT_S) -> dict[str, Any] | None:
    """The metrics `obs` took in the write that just ran (`DataFrame.observe`: counts without a
    pass of their own), or None when they did not come within `timeout_s`: the observed plan
    did not run as a Spark SQL action (wrapped into an RDD, say), and the caller counts another
    way. `Observation.get` alone would wait forever."""
    jo = getattr(obs, "_jo", None)
    if jo is None:  # Spark Connect: the metrics came back with the action's result
        return obs.get
    future, deadline = jo.future(), time.monotonic() + timeout_s
    while not future.isCompleted():
        if time.monotonic() > deadline:
            log.warning("observed metrics %s did not come: counting another way", jo.name())
            return None
        time.sleep(0.005)
    return obs.get


def _date(v: str) -> dt.date:
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--date {v!r} is not a YYYY-MM-DD date") from None


def job_parser(job: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=job)
    p.add_argument(
        "--pipeline",
        required=True,
        help="a name (conf/pipelines/<name>.yaml), a path, or a URI (hdfs://…/<name>.yaml)",
    )
    p.add_argument("--date", required=True, type=_date, help="the run's logical date, YYYY-MM-DD")
    p.add_argument("--env", default=None, help="config environment (conf/<env>/), default dev")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument(
        "--project",
        type=Path,
        default=None,
        help="the project folder holding conf/ (default: LAKELOOP_HOME, else the working "
        "directory or a parent of it): for spark-submit from anywhere, e.g. with --py-files",
    )
    return p


def _read_spec(spark: SparkSession, uri: str) -> str:
    try:
        return storage.read_text(spark, uri)
    except Py4JJavaError as e:
        raise ConfigError(
            f"pipeline spec {uri} cannot be read: {str(e.java_exception).splitlines()[0]}"
        ) from None


def main_for(
    job: str,
    run: Callable[[SparkSession, Pipeline, dt.date], object],
    argv: list[str] | None,
    on_success: Callable[[object], None] | None = None,
) -> int:
    """Parse args, load and validate config + spec (before any I/O), build the session, run."""
    logs.configure()
    args = job_parser(job).parse_args(argv)
    try:
        cfg = load_config(args.env, parse_set_pairs(args.set), project_root=args.project)
        log.info("%s config: %s", job, json.dumps(cfg.redacted(), default=str))
        if is_remote_spec(args.pipeline):  # read through the session's Hadoop FileSystem
            spark = build_spark(cfg, app_name=f"lakeloop-{job}")
            pipeline = load_pipeline_text(cfg, _read_spec(spark, args.pipeline), args.pipeline)
        else:  # validated before any JVM starts
            pipeline = load_pipeline(cfg, args.pipeline)
            spark = build_spark(cfg, app_name=f"lakeloop-{job}-{pipeline.name}")
        result = run(spark, pipeline, args.date)
        if on_success:
            on_success(result)
    except (ConfigError, MissingJarsError, JobError, ConnectServerError) as e:
        # a bad config or spec (SpecError included) is 2, a run that failed is 1
        log.error("%s failed: %s", job, e)
        return 2 if isinstance(e, ConfigError | MissingJarsError) else 1
    except PySparkException as e:
        log.error("%s failed in Spark: %s", job, str(e).split("\n")[0][:2000])
        log.debug("Spark error", exc_info=True)
        return 1
    except Py4JJavaError as e:  # JVM errors PySpark does not convert (e.g. from MLlib)
        log.error("%s failed in the JVM: %s", job, str(e.java_exception).split("\n")[0][:2000])
        log.debug("JVM error", exc_info=True)
        return 1
    except Exception as e:  # a bug of lakeloop's: one line, the traceback at DEBUG
        log.error(
            "%s failed: %s: %s (an unexpected error; LAKELOOP_LOG_LEVEL=DEBUG shows the traceback)",
            job,
            type(e).__name__,
            str(e).split("\n")[0][:2000],
        )
        log.debug("unexpected error", exc_info=True)
        return 1
    log.info("%s succeeded", job)
    return 0
