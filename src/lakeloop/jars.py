"""The JVM jars Spark needs beyond the pyspark wheel (Delta Lake, the Kafka source).

`make jars` resolves them with Maven (infra/spark-jars/pom.xml) into ``.jars/spark-all`` and then
runs ``python -m lakeloop.jars select`` to keep, in ``.jars/spark``, only the artifacts that
pyspark does not already ship (matched by artifact name, ignoring the version).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from pathlib import Path

import pyspark

log = logging.getLogger(__name__)

FIX_COMMAND = "make jars"
_VERSION_SUFFIX = re.compile(r"-\d[^-]*\.jar$")
# Classes that must load for lakeloop to work; tests assert them through the session.
REQUIRED_CLASSES = (
    "io.delta.sql.DeltaSparkSessionExtension",
    "org.apache.spark.sql.kafka010.KafkaSourceProvider",
)


class MissingJarsError(RuntimeError):
    """The jar folder is missing or incomplete."""


def artifact_name(jar: str) -> str:
    """`delta-spark_4.1_2.13-4.4.0.jar` -> `delta-spark_4.1_2.13`."""
    return _VERSION_SUFFIX.sub("", jar)


def pyspark_jars_dir() -> Path:
    return Path(pyspark.__file__).parent / "jars"


def select_missing(all_dir: Path, out_dir: Path, shipped_dir: Path | None = None) -> list[Path]:
    """Copy into `out_dir` the jars of `all_dir` whose artifact pyspark does not ship."""
    shipped = {artifact_name(p.name) for p in (shipped_dir or pyspark_jars_dir()).glob("*.jar")}
    if not all_dir.is_dir():
        raise MissingJarsError(f"{all_dir} does not exist; run `{FIX_COMMAND}`")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    kept = []
    for jar in sorted(all_dir.glob("*.jar")):
        if artifact_name(jar.name) not in shipped:
            shutil.copy2(jar, out_dir / jar.name)
            kept.append(out_dir / jar.name)
    return kept


def spark_jars(jars_dir: Path) -> list[Path]:
    """The jars to put on `spark.jars`; a clear error when the folder is missing."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    names = {artifact_name(j.name) for j in jars}
    needed = {"delta-spark_4.1_2.13", "spark-sql-kafka-0-10_2.13", "kafka-clients"}
    missing = needed - names
    if missing:
        raise MissingJarsError(
            f"Spark jars missing in {jars_dir} ({', '.join(sorted(missing))} not found). "
            f"Run `{FIX_COMMAND}` from the project root to resolve them from Maven Central."
        )
    return jars


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lakeloop.jars")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select", help="keep only the jars pyspark does not ship")
    s.add_argument("--all", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    kept = select_missing(args.all, args.out)
    sys.stdout.write(f"{len(kept)} jars kept in {args.out} (pyspark ships the rest)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
