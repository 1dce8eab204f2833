"""Write spark-defaults.conf into the virtualenv's SPARK_HOME so that a bare
`spark-submit jobs/<job>.py ...` from the virtualenv's bin/ finds Delta and the Kafka source on
the driver classpath (jars given only to the SparkSession builder come too late under
spark-submit). Run by `lakeloop setup` (and so `make setup`) with the user cache's Spark jars;
the SparkSession factory still passes the same jars as `spark.jars`. Needs no project: only the
jars and lakeloop's fixed Spark settings go in.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pyspark

from lakeloop.config import AppConfig, SparkSettings
from lakeloop.jars import cache_dir
from lakeloop.session import session_conf

log = logging.getLogger(__name__)

_KEYS = (
    "spark.jars",
    "spark.sql.extensions",
    "spark.sql.catalog.spark_catalog",
)
HEADER = "# written by `lakeloop setup` (lakeloop.sparkdefaults); do not edit"

LOG4J2 = """# written by `lakeloop setup` (lakeloop.sparkdefaults)
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.kafka.name = org.apache.kafka
logger.kafka.level = error
"""
# Deployment pins (SPARK_LOCAL_IP, spark.driver.host) are not machine-wide: the config profile
# sets them (conf/dev, conf/test: loopback; a cluster profile: none). The file stays so that a
# pin an older `setup` wrote is replaced.
SPARK_ENV = (
    "# written by `lakeloop setup`: SPARK_LOCAL_IP and spark.driver.host come from the config\n"
    "# profile (spark.local_ip, spark.driver_host), not from this machine-wide file\n"
)


def spark_defaults_path() -> Path:
    return Path(pyspark.__file__).parent / "conf" / "spark-defaults.conf"


def spark_defaults(jars_dir: Path) -> str:
    """The file's text: lakeloop's session settings that must be known at JVM start."""
    cfg = AppConfig(
        project_root=Path.cwd(),
        lakehouse_root=str(Path.cwd()),  # not written: only _KEYS go in
        spark=SparkSettings(jars_dir=jars_dir),
    )
    conf = session_conf(cfg)
    return "\n".join([HEADER, *(f"{k} {conf[k]}" for k in _KEYS)]) + "\n"


def _write(path: Path, text: str, mode: int | None = None) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return True


def write(jars_dir: Path | None = None) -> tuple[Path, bool]:
    """spark-defaults.conf (+ log4j2.properties, spark-env.sh) in pyspark's conf/; returns the
    path and whether anything changed."""
    path = spark_defaults_path()
    path.parent.mkdir(exist_ok=True)
    changed = _write(path, spark_defaults(jars_dir or cache_dir("spark")))
    # spark-submit's default log4j profile logs every INFO line; keep the job's own logs readable
    changed |= _write(path.parent / "log4j2.properties", LOG4J2)
    changed |= _write(path.parent / "spark-env.sh", SPARK_ENV, 0o755)
    log.debug("%s %s", "wrote" if changed else "up to date:", path)
    return path, changed


def main() -> int:
    path, changed = write()
    sys.stdout.write(f"{'wrote' if changed else 'up to date:'} {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
