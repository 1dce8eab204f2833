"""Reading lakeloop's Delta tables without a JVM, for the Airflow tasks and the demo's summary:
delta-rs replays the Delta log (the current snapshot's files), pyarrow reads the Parquet files
through its own filesystem for the table's URI (local, s3://, gs://, abfs://; hdfs:// only
where pyarrow finds libhdfs, which this machine lacks: the Airflow tasks have run on local
lakehouses only).

pyarrow's filesystem rather than delta-rs's object store: a process that read through the
latter aborted at exit now and then ("terminate called without an active exception", exit
134, 1 in 8 here; delta-io/delta-rs#2184)."""

from __future__ import annotations

import pyarrow.dataset as pds
import pyarrow.fs as pafs


class TableMissing(LookupError):
    """No Delta table at the path."""


def dataset(path: str) -> pds.Dataset:
    """The table's current snapshot as a pyarrow dataset (partition columns included)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = path if "://" in path else f"file://{path}"
    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        raise TableMissing(f"no Delta table at {path}") from None
    fs, root = pafs.FileSystem.from_uri(uri)
    return table.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(root, fs))


def version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path if "://" in path else f"file://{path}").version()
