"""The JVM jars lakeloop needs beyond the pyspark wheel: Delta Lake and the Kafka source (for
Spark), the Apache Kafka jars (for the local broker) and Hadoop's HDFS daemons (for the local
cluster, `lakeloop cluster up`).

`lakeloop setup` (what `make setup` runs too) resolves them once per user with Maven, from the
poms and Maven settings shipped in this package (`resources/maven/`, linked from `infra/`),
into a cache folder named after the installed versions::

    ~/.cache/lakeloop/jars/<pyspark version>-<delta-spark version>/spark/   (+ .stamp)
    ~/.cache/lakeloop/jars/<pyspark version>-<delta-spark version>/kafka/   (+ .stamp)
    ~/.cache/lakeloop/jars/<pyspark version>-<delta-spark version>/hdfs/    (+ .stamp)

`$LAKELOOP_JARS_CACHE` replaces `~/.cache/lakeloop/jars` (else `$XDG_CACHE_HOME/lakeloop/jars`).
Of the Spark jars Maven resolves, only the artifacts pyspark does not already ship are kept
(matched by artifact name, ignoring the version). The HDFS jars are at the Hadoop version pyspark
ships (its hadoop-client-api jar), so the daemons and Spark's HDFS client agree. A stamp holds a hash of the pom, the settings
and the versions: a second `setup` does nothing, a changed pom resolves again.

Every project finds the cache, so a project (`lakeloop init`, `LAKELOOP_HOME`) never needs jars
beside it. `spark.jars_dir` / `kafka.broker.jars_dir` set in the config win; the former
default `.jars/<part>` is used when the project has that folder, else the cache;
`cluster.hdfs_jars_dir` likewise for the HDFS jars.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyspark

from lakeloop.config import AppConfig

log = logging.getLogger(__name__)

FIX_COMMAND = "lakeloop setup"
CACHE_ENV = "LAKELOOP_JARS_CACHE"
RESOURCES = Path(__file__).resolve().parent / "resources"
MAVEN_SETTINGS = RESOURCES / "maven" / "settings.xml"
POMS = {
    "spark": RESOURCES / "maven" / "spark-jars" / "pom.xml",
    "kafka": RESOURCES / "maven" / "kafka-broker" / "pom.xml",
    "hdfs": RESOURCES / "maven" / "hdfs" / "pom.xml",
}
PARTS = tuple(POMS)
# The project-relative jar folders the config used to default to (a checkout's `make jars`).
LEGACY_DIRS = {"spark": Path(".jars/spark"), "kafka": Path(".jars/kafka")}
STAMP = ".stamp"
# What the HDFS daemons cannot run without (hadoop-hdfs alone lacks the client classes).
HDFS_ARTIFACTS = ("hadoop-hdfs", "hadoop-hdfs-client", "hadoop-common")
# The config key that overrides each part's folder (named in the errors).
CONFIG_KEYS = {
    "spark": "spark.jars_dir",
    "kafka": "kafka.broker.jars_dir",
    "hdfs": "cluster.hdfs_jars_dir",
}
_VERSION_SUFFIX = re.compile(r"-\d[^-]*\.jar$")
# Classes that must load for lakeloop to work; tests assert them through the session.
REQUIRED_CLASSES = (
    "io.delta.sql.DeltaSparkSessionExtension",
    "org.apache.spark.sql.kafka010.KafkaSourceProvider",
)


class MissingJarsError(RuntimeError):
    """The jar folder is missing or incomplete."""


class SetupError(RuntimeError):
    """The jars could not be resolved (no Maven, no network, a version Maven Central lacks)."""


def artifact_name(jar: str) -> str:
    """`delta-spark_4.1_2.13-4.4.0.jar` -> `delta-spark_4.1_2.13`."""
    return _VERSION_SUFFIX.sub("", jar)


def pyspark_jars_dir() -> Path:
    return Path(pyspark.__file__).parent / "jars"


def spark_version() -> str:
    return pyspark.__version__


def delta_version() -> str:
    return importlib.metadata.version("delta-spark")


def hadoop_version(shipped_dir: Path | None = None) -> str:
    """The Hadoop version pyspark ships (`hadoop-client-api-3.4.2.jar` -> `3.4.2`)."""
    for jar in sorted((shipped_dir or pyspark_jars_dir()).glob("hadoop-client-api-*.jar")):
        return jar.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    raise SetupError(
        f"no hadoop-client-api jar in {shipped_dir or pyspark_jars_dir()}: cannot tell which "
        "Hadoop version pyspark ships (reinstall pyspark)"
    )


def spark_binary_version(version: str | None = None) -> str:
    """`4.1.1` -> `4.1` (the Spark line Delta's artifact is built for)."""
    return ".".join((version or spark_version()).split(".")[:2])


def needed_spark_artifacts() -> set[str]:
    return {
        f"delta-spark_{spark_binary_version()}_2.13",
        "spark-sql-kafka-0-10_2.13",
        "kafka-clients",
    }


def versions_key() -> str:
    """The cache folder of the installed versions: `4.1.1-4.4.0`."""
    return f"{spark_version()}-{delta_version()}"


def user_cache(kind: str, env_var: str, environ: dict[str, str] | None = None) -> Path:
    """$<env_var>, else $XDG_CACHE_HOME/lakeloop/<kind>, else ~/.cache/lakeloop/<kind>: where
    lakeloop keeps what it fetches once per user (the jars, the Data Docs' web assets)."""
    env = os.environ if environ is None else environ
    if env.get(env_var):
        return Path(env[env_var]).expanduser().resolve()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / "lakeloop" / kind).resolve()


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """$LAKELOOP_JARS_CACHE, else $XDG_CACHE_HOME/lakeloop/jars, else ~/.cache/lakeloop/jars."""
    return user_cache("jars", CACHE_ENV, environ)


def cache_dir(part: str, environ: dict[str, str] | None = None) -> Path:
    """`<cache root>/<pyspark>-<delta>/<part>`, part `spark`, `kafka` or `hdfs`."""
    if part not in POMS:
        raise ValueError(f"unknown jar set {part!r}; expected one of {', '.join(PARTS)}")
    return cache_root(environ) / versions_key() / part


def jars_dir_for(configured: Path | None, project_root: Path, part: str) -> Path:
    """Where a project's `part` jars are: the configured folder (relative to the project root)
    when set; unset, or the former default `.jars/<part>` that the project does not have, is
    the user cache."""
    if configured is not None:
        path = configured if configured.is_absolute() else project_root / configured
        if Path(configured) != LEGACY_DIRS.get(part) or path.is_dir():
            return path
    return cache_dir(part)


def spark_jars_dir(cfg: AppConfig) -> Path:
    return jars_dir_for(cfg.spark.jars_dir, cfg.project_root, "spark")


def kafka_jars_dir(cfg: AppConfig) -> Path:
    return jars_dir_for(cfg.kafka.broker.jars_dir, cfg.project_root, "kafka")


def hdfs_jars_dir(cfg: AppConfig) -> Path:
    return jars_dir_for(cfg.cluster.hdfs_jars_dir, cfg.project_root, "hdfs")


def _fix_hint(jars_dir: Path, part: str) -> str:
    if jars_dir == cache_dir(part):
        return (
            f"Run `{FIX_COMMAND}` once to resolve them from Maven Central into the user cache "
            f"(`make setup` in a lakeloop checkout does it too)."
        )
    return (
        f"That folder is set in the config ({CONFIG_KEYS[part]}): fill it, or remove the "
        f"setting to use the user cache that `{FIX_COMMAND}` fills."
    )


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
    missing = needed_spark_artifacts() - names
    if missing:
        raise MissingJarsError(
            f"Spark jars missing in {jars_dir} ({', '.join(sorted(missing))} not found). "
            + _fix_hint(jars_dir, "spark")
        )
    return jars


def kafka_broker_jars(jars_dir: Path) -> list[Path]:
    """The broker's classpath jars; a clear error when the folder lacks Kafka."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise MissingJarsError(
            f"Kafka broker jars missing in {jars_dir}. " + _fix_hint(jars_dir, "kafka")
        )
    return jars


def hdfs_jars(jars_dir: Path) -> list[Path]:
    """The HDFS daemons' classpath jars; a clear error naming what the folder lacks."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    missing = set(HDFS_ARTIFACTS) - {artifact_name(j.name) for j in jars}
    if missing:
        raise MissingJarsError(
            f"HDFS jars missing in {jars_dir} ({', '.join(sorted(missing))} not found). "
            + _fix_hint(jars_dir, "hdfs")
        )
    return jars


# --- lakeloop setup --------------------------------------------------------------------------


@dataclass(frozen=True)
class PartResult:
    part: str
    path: Path
    jars: int
    resolved: bool  # False: the stamp matched, nothing was done


def _fingerprint(part: str) -> str:
    """What the folder's content depends on: the pom, the Maven settings, the versions."""
    h = hashlib.sha256()
    for f in (POMS[part], MAVEN_SETTINGS):
        h.update(f.read_bytes())
    h.update(versions_key().encode())
    return h.hexdigest()


def is_complete(part: str, target: Path | None = None) -> bool:
    """The cached folder exists and its stamp matches the shipped pom and installed versions."""
    target = target or cache_dir(part)
    try:
        stamp = json.loads((target / STAMP).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return stamp.get("fingerprint") == _fingerprint(part) and any(target.glob("*.jar"))


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError(
            "Maven (`mvn`) is not on PATH: lakeloop resolves its JVM jars (Delta Lake, the Kafka "
            "source and broker, the HDFS daemons) from Maven Central with it. Install Maven 3 "
            "(e.g. `apt-get install maven`, `brew install maven`) and run `lakeloop setup` again."
        )
    return mvn


def _copy_dependencies(part: str, out: Path, work: Path) -> None:
    """`mvn dependency:copy-dependencies` of the shipped pom into `out` (run in `work`: the
    package folder may be read-only, Maven must not write beside the pom)."""
    pom, settings = work / "pom.xml", work / "settings.xml"
    shutil.copyfile(POMS[part], pom)
    shutil.copyfile(MAVEN_SETTINGS, settings)
    cmd = [
        _mvn(),
        "-q",
        "-B",
        "-s",
        str(settings),
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out}",
    ]
    if part == "spark":  # the jars follow the installed pyspark / delta-spark
        cmd += [
            f"-Dspark.version={spark_version()}",
            f"-Dspark.binary.version={spark_binary_version()}",
            f"-Ddelta.version={delta_version()}",
        ]
    if part == "hdfs":  # the daemons at the Hadoop version of pyspark's HDFS client
        cmd.append(f"-Dhadoop.version={hadoop_version()}")
    log.info("resolving the %s jars with Maven: %s", part, " ".join(cmd))
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = " | ".join(
            line.strip()
            for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip().startswith("[ERROR]")
        )
        raise SetupError(
            f"mvn could not resolve the {part} jars (exit {proc.returncode}): "
            f"{detail[:1500] or (proc.stdout + proc.stderr)[-1500:]}"
        )


def resolve_part(part: str, force: bool = False) -> PartResult:
    """One jar set into the user cache; nothing to do when its stamp matches."""
    target = cache_dir(part)
    if not force and is_complete(part, target):
        n = len(list(target.glob("*.jar")))
        log.debug("%s jars up to date in %s (%d jars): nothing to do", part, target, n)
        return PartResult(part, target, n, False)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Resolve beside the target and rename it into place: a concurrent reader or a second
    # `setup` never sees half a folder.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{part}-") as tmp:
        work = Path(tmp)
        resolved = work / "all"
        _copy_dependencies(part, resolved, work)
        out = work / "out"
        if part == "spark":
            select_missing(resolved, out)
            spark_jars(out)  # the needed artifacts are there
        else:
            resolved.rename(out)
            {"kafka": kafka_broker_jars, "hdfs": hdfs_jars}[part](out)
        n = len(list(out.glob("*.jar")))
        (out / STAMP).write_text(
            json.dumps({"fingerprint": _fingerprint(part), "versions": versions_key(), "jars": n})
            + "\n"
        )
        if not force and is_complete(part, target):  # a concurrent setup finished first
            log.info("%s jars were resolved meanwhile into %s; keeping those", part, target)
            return PartResult(part, target, len(list(target.glob("*.jar"))), False)
        if target.exists():
            stale = work / "stale"
            try:
                target.rename(stale)
            except FileNotFoundError:  # another setup moved it meanwhile
                pass
        try:
            out.rename(target)
        except OSError:  # another setup put a folder there in the meantime
            if not is_complete(part, target):
                raise
    log.info("%s jars resolved into %s (%d jars)", part, target, n)
    return PartResult(part, target, n, True)


def setup(force: bool = False, parts: tuple[str, ...] = PARTS) -> list[PartResult]:
    """`lakeloop setup`: every jar set into the user cache (idempotent)."""
    return [resolve_part(part, force) for part in parts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lakeloop.jars")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select", help="keep only the jars pyspark does not ship")
    s.add_argument("--all", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    sub.add_parser("where", help="print the user cache folder of the installed versions")
    args = p.parse_args(argv)
    if args.cmd == "where":
        sys.stdout.write(f"{cache_root() / versions_key()}\n")
        return 0
    kept = select_missing(args.all, args.out)
    sys.stdout.write(f"{len(kept)} jars kept in {args.out} (pyspark ships the rest)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
