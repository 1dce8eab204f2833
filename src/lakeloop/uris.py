"""Lakehouse locations as URI strings: a local path, `file:///…`, `hdfs://…`, `s3a://…`,
`abfss://…`, `gs://…`. Pure string work (no I/O): joining, the local-or-not test and the
"stays under the root" check on scheme + authority + normalized path.

A local root is kept as an absolute path (no scheme), the form every local tool takes (Spark,
delta-rs, pyarrow); `file:` URIs stay URIs (on a cluster whose `fs.defaultFS` is HDFS a bare
path would mean HDFS, so write `file:///…` to mean the driver's disk there)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

# schemes a lakehouse may live on (Hadoop FileSystem implementations Spark ships or documents)
SCHEMES = frozenset({"file", "hdfs", "viewfs", "s3a", "abfs", "abfss", "wasb", "wasbs", "gs"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def scheme(uri: str) -> str:
    """`hdfs://nn:8020/x` -> `hdfs`; a plain path -> `` (Windows drive letters are not used)."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else ""


def is_local(uri: str) -> bool:
    return scheme(uri) in ("", "file")


def local_path(uri: str) -> Path:
    """The driver-disk path of a local location; ValueError for any other scheme."""
    if not is_local(uri):
        raise ValueError(f"{uri} is not on the local file system")
    return Path(urlsplit(uri).path if scheme(uri) == "file" else uri)


def _split(uri: str) -> tuple[str, str, str]:
    """(scheme, authority, path) with the path normalized; `..` that climbs above `/` and
    unknown schemes are errors."""
    s = scheme(uri)
    if s and s not in SCHEMES:
        raise ValueError(
            f"{uri!r}: unknown storage scheme {s!r} (expected a path or one of "
            f"{', '.join(sorted(SCHEMES))})"
        )
    if s:
        parts = urlsplit(uri)
        if parts.query or parts.fragment:
            raise ValueError(f"{uri!r}: a storage location takes no ?query or #fragment")
        authority, path = parts.netloc, parts.path or "/"
    else:
        authority, path = "", uri
    if not path.startswith("/"):
        raise ValueError(f"{uri!r}: the path must be absolute")
    if any(seg == ".." for seg in path.split("/")):
        raise ValueError(f"{uri!r}: '..' is not allowed in a storage location")
    norm = posixpath.normpath(path)
    norm = "/" + norm.lstrip("/")  # POSIX keeps a leading '//'; a URI path does not need it
    return s, authority, norm


def normalize(uri: str, base: Path | None = None) -> str:
    """A canonical location: a relative path resolves against `base` (the project root) to an
    absolute path; `file:` keeps its scheme (`file:///p`); others keep scheme + authority."""
    uri = uri.strip()
    if not uri:
        raise ValueError("empty location")
    if not scheme(uri):
        if ".." in Path(uri).parts:
            raise ValueError(f"{uri!r}: '..' is not allowed in a storage location")
        p = Path(uri).expanduser()
        if not p.is_absolute():
            if base is None:
                raise ValueError(f"{uri!r}: a relative path needs a base folder")
            p = base / p
        return str(p.resolve())
    s, authority, path = _split(uri)
    if s == "file":
        return f"file://{path}" if not authority else f"file://{authority}{path}"
    return f"{s}://{authority}{path}"


def join(root: str, *parts: str) -> str:
    """`join("hdfs://nn/lake", "bronze", "t")` -> `hdfs://nn/lake/bronze/t`. Parts are
    relative (a leading `/` is dropped); no normalization (a glob stays a glob)."""
    out = root.rstrip("/") or "/"
    for part in parts:
        part = str(part).strip("/")
        if part:
            out = f"{out}/{part}" if out != "/" else f"/{part}"
    return out


def within(root: str, uri: str) -> bool:
    """True when `uri` is `root` or below it: same scheme (a bare path and `file:` count as
    the same local file system) and authority, and a normalized path under the root's.
    `..` anywhere, another scheme or another host is False."""
    try:
        rs, ra, rp = _split(root if scheme(root) else _abs(root))
        us, ua, up = _split(uri if scheme(uri) else _abs(uri))
    except ValueError:
        return False
    if is_local(root) and is_local(uri):
        rs = us = "file"
        ra = ra if ra not in ("localhost",) else ""
        ua = ua if ua not in ("localhost",) else ""
    if (rs, ra) != (us, ua):
        return False
    return up == rp or up.startswith(rp.rstrip("/") + "/")


def _abs(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r}: the path must be absolute")
    return path


def parent(uri: str) -> str:
    """The folder holding `uri` (string-wise: `hdfs://nn/a/b` -> `hdfs://nn/a`)."""
    head, _, _ = uri.rstrip("/").rpartition("/")
    if not head or head.endswith(":/") or head.endswith("//"):
        return uri
    return head


def relative(base: str, target: str) -> str | None:
    """`target` relative to the folder `base` (POSIX, `..` allowed in the result) when both
    are on the same file system; None otherwise. For links between report pages."""
    if is_local(base) != is_local(target):
        return None
    try:
        bs, ba, bp = _split(base if scheme(base) else _abs(base))
        ts, ta, tp = _split(target if scheme(target) else _abs(target))
    except ValueError:
        return None
    if not is_local(base) and (bs, ba) != (ts, ta):
        return None
    return posixpath.relpath(tp, bp)
