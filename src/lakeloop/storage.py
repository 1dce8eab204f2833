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


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs_path(spark, uri)
    return bool(fs.exists(path))


def glob_files(spark: SparkSession, pattern: str) -> list[str]:
    """The files (not folders) matching a Hadoop glob (`*`, `?`, `[ab]`, `{a,b}`), as fully
    qualified URIs, sorted. A folder that does not exist matches nothing. Names starting with
    `.` or `_` are hidden (in-flight uploads, `.crc`, `_SUCCESS`), as in Spark's own listing
    and Python's glob."""
    fs, path = _fs_path(spark, pattern)
    statuses = fs.globStatus(path)
    if statuses is None:
        return []
    return sorted(
        str(st.getPath().toString())
        for st in statuses
        if st.isFile() and not str(st.getPath().getName()).startswith((".", "_"))
    )


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Replace the file at `uri` with `text` (parent folders created). Written to a hidden
    sibling first and renamed into place, so a reader never sees a half-written file (the old
    one is deleted just before the rename: for an instant there is none)."""
    write_bytes(spark, uri, text.encode("utf-8"))


def write_bytes(spark: SparkSession, uri: str, data: bytes) -> None:
    fs, path = _fs_path(spark, uri)
    jvm = spark.sparkContext._jvm
    tmp = jvm.org.apache.hadoop.fs.Path(path.getParent(), f".{path.getName()}.tmp")
    fs.mkdirs(path.getParent())
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()
    if fs.exists(path):
        fs.delete(path, False)
    if not fs.rename(tmp, path):
        raise OSError(f"could not move {tmp} to {uri}")


def upload_dir(spark: SparkSession, local_dir: str, uri: str) -> None:
    """Copy the local folder's content into the folder `uri` (created; files replaced)."""
    fs, path = _fs_path(spark, uri)
    jvm = spark.sparkContext._jvm
    local = jvm.org.apache.hadoop.fs.Path(f"file://{local_dir}")
    fs.mkdirs(path)
    local_fs = local.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    for st in local_fs.listStatus(local):
        fs.copyFromLocalFile(False, True, st.getPath(), path)


def list_names(spark: SparkSession, uri: str) -> list[str]:
    """The names of the entries directly in the folder `uri` ([] when it does not exist)."""
    fs, path = _fs_path(spark, uri)
    if not fs.exists(path):
        return []
    return sorted(str(st.getPath().getName()) for st in fs.listStatus(path))
