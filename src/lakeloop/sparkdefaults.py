"""Write spark-defaults.conf into the virtualenv's SPARK_HOME so that a bare
`spark-submit jobs/<job>.py ...` from .venv/bin finds Delta and the Kafka source on the driver
classpath (jars given only to the SparkSession builder come too late under spark-submit).
Run by `make jars`; the SparkSession factory still passes the same jars as `spark.jars`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyspark

from lakeloop.config import load_config
from lakeloop.session import session_conf

_KEYS = (
    "spark.jars",
    "spark.sql.extensions",
    "spark.sql.catalog.spark_catalog",
    "spark.driver.host",
)


LOG4J2 = """# written by `make jars` (lakeloop.sparkdefaults)
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


def spark_defaults_path() -> Path:
    return Path(pyspark.__file__).parent / "conf" / "spark-defaults.conf"


def main() -> int:
    conf = session_conf(load_config())
    path = spark_defaults_path()
    path.parent.mkdir(exist_ok=True)
    lines = ["# written by `make jars` (lakeloop.sparkdefaults); do not edit"]
    lines += [f"{k} {conf[k]}" for k in _KEYS]
    path.write_text("\n".join(lines) + "\n")
    # spark-submit's default log4j profile logs every INFO line; keep the job's own logs readable.
    (path.parent / "log4j2.properties").write_text(LOG4J2)
    # keep Spark on loopback (no "resolves to a loopback address" warning, no LAN traffic)
    env_sh = path.parent / "spark-env.sh"
    env_sh.write_text(
        "# written by `make jars`\nexport SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}\n"
    )
    env_sh.chmod(0o755)
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
