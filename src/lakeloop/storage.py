"""Small files on lakehouse storage (checkpoint metadata, locks) through Hadoop's FileSystem, so
the same code works for local paths, `file://`, `hdfs://` and `s3a://` URIs."""

from __future__ import annotations

from pyspark.sql import SparkSession


def _fs_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def has_children(spark: SparkSession, uri: str) -> bool:
    """True when `uri` is a folder holding at least one entry."""
    fs, path = _fs_path(spark, uri)
    return bool(fs.exists(path)) and len(fs.listStatus(path)) > 0


def read_text(spark: SparkSession, uri: str) -> str:
    fs, path = _fs_path(spark, uri)
    stream = fs.open(path)
    try:
        jvm = spark.sparkContext._jvm
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def create_exclusive(spark: SparkSession, uri: str, text: str) -> bool:
    """Write `text` to a new file at `uri`; False (nothing written) when the file exists. The
    create is atomic on HDFS and local file systems (the lock and first-writer-wins cases)."""
    fs, path = _fs_path(spark, uri)
    try:
        out = fs.create(path, False)
    except Exception as e:  # py4j wraps FileAlreadyExistsException
        if "FileAlreadyExistsException" in str(e) or fs.exists(path):
            return False
        raise
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    return True


def delete(spark: SparkSession, uri: str) -> None:
    fs, path = _fs_path(spark, uri)
    fs.delete(path, False)
