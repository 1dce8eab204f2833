"""A JVM-free scorer of the fitted Spark ML `PipelineModel` lakeloop trains, with the numbers
Spark's `transform` gives.

`PipelineScorer.load` reads the folder `PipelineModel.save(path)` writes (MLflow's spark flavor
keeps it under `<artifact>/model/sparkml/`): `metadata/part-*` (JSON) and, per stage,
`stages/<i>_<uid>/metadata/part-*` + `data/*.parquet` (+ `treesMetadata/*.parquet` for tree
ensembles), read with pyarrow. Every stage is precompiled (labels into dicts, trees into flat
lists), and `score` runs records (dicts of raw input values) through them in plain Python.

One reader per Spark stage; anything else (another stage class, a param value not implemented
here, a model saved by a Spark other than 4.x) is a `ScorerError` naming the stage, the param and
the value. Supported: ImputerModel, StringIndexerModel, OneHotEncoderModel, VectorAssembler,
StandardScalerModel, and as the last stage LinearRegressionModel, LogisticRegressionModel
(binomial and multinomial), RandomForest{Regression,Classification}Model and
GBT{Regression,Classification}Model.

Exactness (read from Spark 4.1's Scala sources, not guessed):
- Imputer: null, and values equal to `missingValue` (NaN equals NaN, as in Spark SQL), take the
  surrogate; the result is cast back to the input column's type (a double -> int cast truncates
  toward zero, as Spark's ANSI cast does; -> float rounds to float32).
- VectorAssembler keeps a sparse vector when 12*nnz + 28 < 8*size + 12, else a dense one
  (`compressedWithNNZ`), and later arithmetic follows that representation, as Spark's does.
- Dense dot products (linear models on a dense feature vector, the per-class rows of a
  multinomial model, GBT's weighted sum of tree predictions) go through netlib's `VectorBLAS` in
  Spark: per-lane fused multiply-adds over blocks of `DoubleVector.SPECIES_MAX` lanes, the lanes
  summed in order, then a plain tail. `_simd_dot` does the same with an exact FMA; the lane count
  is the JVM's on this machine (`jvm_simd_lanes`: 8 with AVX-512, 4 with AVX/AVX2, else 2). Sparse
  dot products are plain sequential sums, as in Spark's own loops.
- Probabilities use `math.exp`, which may differ from the JVM's `Math.exp` in the last bit; so
  logistic / GBT-classifier probabilities agree to ~1e-16, not always bit for bit.
- A dense column-major multinomial coefficient matrix (Spark never trains one) is scored row by
  row, which may differ from netlib's `dgemvN` in the last bits.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

SUPPORTED_SPARK_MAJORS = (4,)
_INT_BITS = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64}
NUMERIC_TYPES = frozenset({*_INT_BITS, "float", "double"})
INPUT_TYPES = NUMERIC_TYPES | {"boolean", "string"}
_VECTOR = "vector"
_ML = "org.apache.spark.ml."


class ScorerError(ValueError):
    """The saved model cannot be loaded or scored here: an unknown stage, param value or Spark
    version, a broken folder, or input types that do not fit the model."""


class ScoreInputError(ValueError):
    """A record the model cannot score: `column` (None for the record as a whole) and `reason`;
    `record` is the record's position in the batch given to `score`."""

    def __init__(self, column: str | None, reason: str, record: int | None = None) -> None:
        self.column = column
        self.reason = reason
        self.record = record
        where = "" if record is None else f"record {record}: "
        super().__init__(f"{where}{column}: {reason}" if column is not None else where + reason)


@dataclass(frozen=True)
class Scored:
    prediction: float
    probability: tuple[float, ...] | None  # class probabilities (classification), else None
    raw: tuple[float, ...] | None = None  # rawPrediction (classification)


def max_relative_diff(spark_values: Sequence[float], ours: Sequence[float]) -> float:
    """max over i of |a - b| / max(1, |a|), a from Spark, b ours (NaN on one side only: inf)."""
    if len(spark_values) != len(ours):
        raise ValueError(f"{len(spark_values)} Spark values but {len(ours)} of ours")
    worst = 0.0
    for a, b in zip(spark_values, ours, strict=True):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            d = 0.0 if math.isnan(a) and math.isnan(b) else math.inf
        elif a == b:  # also equal infinities
            d = 0.0
        else:
            d = abs(a - b) / max(1.0, abs(a))
        worst = max(worst, d)
    return worst


# --- exact floating point as the JVM does it ------------------------------------------------

_VELTKAMP = 134217729.0  # 2**27 + 1


def _fma(a: float, b: float, c: float) -> float:
    """a * b + c with one rounding, as Java's Math.fma / DoubleVector.fma."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)) or a == 0.0 or b == 0.0:
        return a * b + c  # IEEE gives the same (an exact product, or inf/nan)
    p = a * b
    if 1e-280 < abs(p) < 1e280 and abs(a) < 1e290 and abs(b) < 1e290:
        t = _VELTKAMP * a
        ah = t - (t - a)
        al = a - ah
        t = _VELTKAMP * b
        bh = t - (t - b)
        bl = b - bh
        err = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # p + err == a * b exactly
        try:
            return math.fsum((p, err, c))  # correctly rounded
        except OverflowError:
            pass
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    try:
        return float(exact)
    except OverflowError:
        return math.copysign(math.inf, exact)


def _simd_dot(x: Sequence[float], y: Sequence[float], lanes: int) -> float:
    """netlib VectorBLAS.ddot: lane j accumulates fma(x[i], y[i], acc[j]) over full blocks of
    `lanes`, the lanes are added in order, then the tail is added term by term."""
    n = len(x)
    bound = n - n % lanes
    total = 0.0
    if bound:
        acc = [x[j] * y[j] + 0.0 for j in range(lanes)]  # fma(x, y, +0.0)
        for i in range(lanes, bound, lanes):
            for j in range(lanes):
                acc[j] = _fma(x[i + j], y[i + j], acc[j])
        for a in acc:
            total += a
    for i in range(bound, n):
        total += x[i] * y[i]
    return total


def jvm_simd_lanes() -> int:
    """Doubles per `DoubleVector.SPECIES_MAX` of a HotSpot JVM on this machine (what Spark's
    VectorBLAS uses): 8 with AVX-512, 4 with AVX/AVX2, 2 otherwise (SSE2, NEON)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return 2
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
                if not line.strip():  # the first processor is enough
                    break
    except OSError:
        return 4  # no /proc/cpuinfo (e.g. macOS): AVX2, a guess
    flags = set(info.get("flags", "").split())
    if "avx512f" in flags and not _hotspot_skips_avx512(info):
        return 8
    return 4 if flags & {"avx", "avx2"} else 2


def _hotspot_skips_avx512(info: Mapping[str, str]) -> bool:
    """HotSpot keeps AVX-512 off on early Skylake server steppings (UseAVX=2 unless asked for:
    `vm_version_x86.cpp`), so its vectors there are 256 bits."""
    try:
        family, model, stepping = (
            int(info.get(k, "-1")) for k in ("cpu family", "model", "stepping")
        )
    except ValueError:
        return False
    skylake = (
        info.get("vendor_id") == "GenuineIntel" and family == 6 and model in (0x4E, 0x55, 0x5E)
    )
    return skylake and stepping < 5


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:  # Java gives Infinity
        return math.inf


def _to_float32(x: float) -> float:
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _seq_sum(values: Sequence[float]) -> float:
    """Left to right, as Scala's Array.sum (Python >= 3.12's sum() compensates)."""
    total = 0.0
    for v in values:
        total += v
    return total


class _Vec:
    """A Spark ML vector: dense (`indices` None) or sparse (`indices` ascending)."""

    __slots__ = ("indices", "size", "values")

    def __init__(self, size: int, indices: Sequence[int] | None, values: Sequence[float]):
        self.size = size
        self.indices = indices
        self.values = values

    def dense(self) -> list[float]:
        if self.indices is None:
            return list(self.values)
        out = [0.0] * self.size
        for i, v in zip(self.indices, self.values, strict=True):
            out[i] = v
        return out


def _dot(x: _Vec, y: _Vec, lanes: int) -> float:
    """Spark's BLAS.dot(x, y), case by case."""
    if x.indices is None and y.indices is None:
        return _simd_dot(x.values, y.values, lanes)
    if x.indices is None:
        x, y = y, x  # dot(dense, sparse) = dot(sparse, dense) in Spark
    xi, xv = x.indices, x.values
    total = 0.0
    if y.indices is None:
        yv = y.values
        for k in range(len(xi)):
            total += xv[k] * yv[xi[k]]
        return total
    yi, yv = y.indices, y.values
    ky, ny = 0, len(yi)
    for kx in range(len(xi)):
        ix = xi[kx]
        while ky < ny and yi[ky] < ix:
            ky += 1
        if ky < ny and yi[ky] == ix:
            total += xv[kx] * yv[ky]
            ky += 1
    return total


# --- the saved folder --------------------------------------------------------------------------


_MISSING = object()


@dataclass(frozen=True)
class _Meta:
    """One stage's `metadata/part-*` JSON (DefaultParamsWriter)."""

    folder: Path
    cls: str
    uid: str
    spark_version: str
    set_params: dict[str, Any]
    default_params: dict[str, Any]
    extra: dict[str, Any]

    @property
    def name(self) -> str:
        return self.cls.rsplit(".", 1)[-1]

    @property
    def where(self) -> str:
        return f"{self.name} {self.uid} ({self.folder})"

    def param(self, name: str, default: Any = _MISSING) -> Any:
        if name in self.set_params:
            return self.set_params[name]
        if name in self.default_params:
            return self.default_params[name]
        if default is _MISSING:
            raise ScorerError(f"{self.where}: param {name} is missing from its metadata")
        return default

    def is_set(self, name: str) -> bool:
        return name in self.set_params

    def unsupported(self, param: str, value: Any, supported: str) -> ScorerError:
        return ScorerError(
            f"{self.where}: {self.name} param {param}={value!r} is not supported by this "
            f"scorer (supported: {supported})"
        )


def _read_metadata(folder: Path) -> _Meta:
    parts = sorted((folder / "metadata").glob("part-*"))
    if not parts:
        raise ScorerError(
            f"{folder}: no metadata/part-* file; not a folder written by Spark ML's save()"
        )
    try:
        raw = json.loads(parts[0].read_text(encoding="utf-8").splitlines()[0])
        cls, uid, version = raw["class"], raw["uid"], raw["sparkVersion"]
    except (OSError, ValueError, IndexError, KeyError, TypeError) as e:
        raise ScorerError(f"{parts[0]}: unreadable Spark ML metadata ({e})") from None
    known = {"class", "uid", "sparkVersion", "timestamp", "paramMap", "defaultParamMap"}
    return _Meta(
        folder=folder,
        cls=cls,
        uid=uid,
        spark_version=str(version),
        set_params=dict(raw.get("paramMap") or {}),
        default_params=dict(raw.get("defaultParamMap") or {}),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _check_version(meta: _Meta) -> None:
    try:
        major = int(meta.spark_version.split(".", 1)[0])
    except ValueError:
        major = -1
    if major not in SUPPORTED_SPARK_MAJORS:
        supported = ", ".join(f"{m}.x" for m in SUPPORTED_SPARK_MAJORS)
        raise ScorerError(
            f"{meta.where}: saved with Spark {meta.spark_version}; this scorer reads models "
            f"saved with Spark {supported}"
        )


def _read_rows(meta: _Meta, sub: str) -> list[dict[str, Any]]:
    files = sorted((meta.folder / sub).glob("part-*.parquet"))
    if not files:
        raise ScorerError(f"{meta.where}: no {sub}/part-*.parquet file")
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files])
    except (OSError, pa.ArrowException) as e:
        raise ScorerError(f"{meta.where}: cannot read {sub}/ ({e})") from None
    return table.to_pylist()


def _one_row(meta: _Meta, fields: Sequence[str]) -> dict[str, Any]:
    rows = _read_rows(meta, "data")
    if len(rows) != 1:
        raise ScorerError(f"{meta.where}: data/ holds {len(rows)} rows, expected 1")
    missing = [f for f in fields if f not in rows[0]]
    if missing:
        raise ScorerError(f"{meta.where}: data/ has no field(s) {missing}")
    return rows[0]


def _vector(meta: _Meta, field: str, raw: Mapping[str, Any] | None) -> _Vec:
    """A VectorUDT struct (type 0 sparse: size/indices/values; 1 dense: values)."""
    if raw is None:
        raise ScorerError(f"{meta.where}: {field} is null in data/")
    if raw["type"] == 1:
        return _Vec(len(raw["values"]), None, [float(v) for v in raw["values"]])
    if raw["type"] == 0:
        return _Vec(int(raw["size"]), list(raw["indices"]), [float(v) for v in raw["values"]])
    raise ScorerError(f"{meta.where}: {field} has vector type {raw['type']!r}")


def _in_out_cols(meta: _Meta) -> tuple[list[str], list[str]]:
    """inputCols/outputCols, or the single-column inputCol/outputCol form."""
    if meta.is_set("inputCol"):
        return [meta.param("inputCol")], [meta.param("outputCol")]
    ins, outs = list(meta.param("inputCols")), list(meta.param("outputCols"))
    if len(ins) != len(outs):
        raise ScorerError(f"{meta.where}: {len(ins)} inputCols but {len(outs)} outputCols")
    return ins, outs


def _choice(meta: _Meta, param: str, allowed: Sequence[Any], default: Any = _MISSING) -> Any:
    value = meta.param(param, default)
    if value not in allowed:
        raise meta.unsupported(param, value, " | ".join(map(str, allowed)))
    return value


# --- column types while binding ------------------------------------------------------------


@dataclass
class _Schema:
    """Types of the row's columns while stages are bound: input_types, then each output."""

    types: dict[str, str]
    sizes: dict[str, int]  # vector columns: their size
    origin: dict[str, str]  # column -> the raw input column it derives from (for messages)

    def type_of(self, meta: _Meta, column: str) -> str:
        if column not in self.types:
            raise ScorerError(f"{meta.where}: reads column {column!r}, which nothing provides")
        return self.types[column]

    def add(self, column: str, type_: str, origin: str, size: int | None = None) -> None:
        self.types[column] = type_
        self.origin[column] = self.origin.get(origin, origin)
        if size is not None:
            self.sizes[column] = size


def _cast_from_double(type_: str, column: str) -> Callable[[float], Any]:
    """Spark's ANSI cast of a double to `type_`."""
    if type_ == "double":
        return lambda x: x
    if type_ == "float":
        return _to_float32
    bits = _INT_BITS[type_]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def cast(x: float) -> int:
        if math.isnan(x) or math.isinf(x) or not lo <= math.trunc(x) <= hi:
            raise ScoreInputError(column, f"{x!r} does not fit {type_} (Spark's cast fails)")
        return math.trunc(x)

    return cast


# --- transformers ------------------------------------------------------------------------------


class _Stage:
    meta: _Meta
    inputs: list[str]
    outputs: list[str]

    def bind(self, schema: _Schema) -> None:
        raise NotImplementedError

    def apply(self, row: dict[str, Any]) -> None:
        raise NotImplementedError


class _Imputer(_Stage):
    def __init__(self, meta: _Meta) -> None:
        self.meta = meta
        _choice(meta, "strategy", ("mean", "median", "mode"), "mean")
        self.inputs, self.outputs = _in_out_cols(meta)
        mv = meta.param("missingValue", "NaN")
        try:
            self.missing = float(mv)
        except (TypeError, ValueError):
            raise meta.unsupported("missingValue", mv, "a number or NaN") from None
        row = _one_row(meta, self.inputs)
        self.surrogates = [float(row[c]) for c in self.inputs]
        self.plan: list[tuple[str, str, float, Callable[[float], Any]]] = []

    def bind(self, schema: _Schema) -> None:
        for col, out, surrogate in zip(self.inputs, self.outputs, self.surrogates, strict=True):
            t = schema.type_of(self.meta, col)
            if t not in NUMERIC_TYPES:
                raise ScorerError(f"{self.meta.where}: input column {col} is {t}, not numeric")
            schema.add(out, t, col)
            origin = schema.origin.get(col, col)
            self.plan.append((col, out, surrogate, _cast_from_double(t, origin)))

    def apply(self, row: dict[str, Any]) -> None:
        mv = self.missing
        nan = math.isnan(mv)
        for col, out, surrogate, cast in self.plan:
            v = row[col]
            if v is None:
                x = surrogate
            else:
                x = float(v)
                if x == mv or (nan and x != x):
                    x = surrogate
            row[out] = cast(x)


class _StringIndexer(_Stage):
    def __init__(self, meta: _Meta) -> None:
        self.meta = meta
        self.handle = _choice(meta, "handleInvalid", ("keep", "error", "skip"), "error")
        self.inputs, self.outputs = _in_out_cols(meta)
        labels = _one_row(meta, ["labelsArray"])["labelsArray"]
        if labels is None or len(labels) != len(self.inputs):
            n = None if labels is None else len(labels)
            raise ScorerError(f"{meta.where}: {n} label lists for {len(self.inputs)} columns")
        self.maps = [{s: float(i) for i, s in enumerate(ls)} for ls in labels]
        self.plan: list[tuple[str, str, dict[str, float], Callable[[Any], str], str]] = []

    def bind(self, schema: _Schema) -> None:
        for col, out, labels in zip(self.inputs, self.outputs, self.maps, strict=True):
            t = schema.type_of(self.meta, col)
            if t == "string":
                to_str: Callable[[Any], str] = lambda v: v  # noqa: E731
            elif t in _INT_BITS:
                to_str = str
            elif t == "boolean":
                to_str = lambda v: "true" if v else "false"  # noqa: E731
            else:
                raise ScorerError(
                    f"{self.meta.where}: input column {col} is {t}; indexing a {t} column "
                    "(Spark's double-to-string cast) is not supported by this scorer"
                )
            schema.add(out, "double", col)
            self.plan.append((col, out, labels, to_str, schema.origin.get(col, col)))

    def apply(self, row: dict[str, Any]) -> None:
        for col, out, labels, to_str, origin in self.plan:
            v = row[col]
            idx = None if v is None else labels.get(to_str(v))
            if idx is None:
                if self.handle == "keep":
                    idx = float(len(labels))
                else:
                    what = "null" if v is None else f"unseen category {to_str(v)!r}"
                    verdict = "fails" if self.handle == "error" else "drops the row"
                    raise ScoreInputError(
                        origin,
                        f"{what}: Spark {verdict} (StringIndexer handleInvalid={self.handle})",
                    )
            row[out] = idx


class _OneHotEncoder(_Stage):
    def __init__(self, meta: _Meta) -> None:
        self.meta = meta
        drop_last = _choice(meta, "dropLast", (True, False), True)
        self.keep = _choice(meta, "handleInvalid", ("keep", "error"), "error") == "keep"
        self.inputs, self.outputs = _in_out_cols(meta)
        sizes = [int(s) for s in _one_row(meta, ["categorySizes"])["categorySizes"]]
        if len(sizes) != len(self.inputs):
            raise ScorerError(f"{meta.where}: {len(sizes)} categorySizes, {len(self.inputs)} cols")
        shift = 1 if (not drop_last and self.keep) else -1 if (drop_last and not self.keep) else 0
        self.sizes = sizes
        self.configured = [s + shift for s in sizes]
        # every vector this encoder can output, by index (index == size: the zero vector)
        self.vectors = [
            [_Vec(n, (i,), (1.0,)) if i < n else _Vec(n, (), ()) for i in range(orig + 1)]
            for orig, n in zip(sizes, self.configured, strict=True)
        ]
        self.plan: list[tuple[str, str, int, list[_Vec], str]] = []

    def bind(self, schema: _Schema) -> None:
        for k, (col, out) in enumerate(zip(self.inputs, self.outputs, strict=True)):
            t = schema.type_of(self.meta, col)
            if t not in NUMERIC_TYPES:
                raise ScorerError(f"{self.meta.where}: input column {col} is {t}, not numeric")
            schema.add(out, _VECTOR, col, self.configured[k])
            origin = schema.origin.get(col, col)
            self.plan.append((col, out, self.sizes[k], self.vectors[k], origin))

    def apply(self, row: dict[str, Any]) -> None:
        for col, out, orig, vectors, origin in self.plan:
            v = row[col]
            if v is None:
                raise ScoreInputError(origin, "null where the model needs a value")
            label = float(v)
            if 0 <= label < orig:
                row[out] = vectors[int(label)]
            elif self.keep:
                row[out] = vectors[orig]
            else:
                raise ScoreInputError(
                    origin,
                    f"category index {label!r} outside [0, {orig}) (OneHotEncoder "
                    "handleInvalid=error)",
                )


class _VectorAssembler(_Stage):
    def __init__(self, meta: _Meta) -> None:
        self.meta = meta
        self.handle = _choice(meta, "handleInvalid", ("error", "keep", "skip"), "error")
        self.inputs = list(meta.param("inputCols"))
        self.outputs = [meta.param("outputCol")]
        self.plan: list[tuple[str, bool, int, str]] = []  # column, is vector, size, origin
        self.size = 0

    def bind(self, schema: _Schema) -> None:
        for col in self.inputs:
            t = schema.type_of(self.meta, col)
            if t == _VECTOR:
                size = schema.sizes[col]
            elif t in NUMERIC_TYPES or t == "boolean":
                size = 1
            else:
                raise ScorerError(f"{self.meta.where}: input column {col} is {t}")
            self.plan.append((col, t == _VECTOR, size, schema.origin.get(col, col)))
            self.size += size
        schema.add(self.outputs[0], _VECTOR, self.outputs[0], self.size)

    def apply(self, row: dict[str, Any]) -> None:
        keep = self.handle == "keep"
        indices: list[int] = []
        values: list[float] = []
        pos = 0
        for col, is_vec, size, origin in self.plan:
            v = row[col]
            if v is None:
                if not keep:
                    raise self._invalid(origin, "null")
                indices.extend(range(pos, pos + size))
                values.extend([math.nan] * size)
            elif is_vec:
                idx = range(v.size) if v.indices is None else v.indices
                for i, x in zip(idx, v.values, strict=True):
                    if x != 0.0:
                        indices.append(pos + i)
                        values.append(x)
            else:
                x = float(v)
                if x != x and not keep:
                    raise self._invalid(origin, "NaN")
                if x != 0.0:
                    indices.append(pos)
                    values.append(x)
            pos += size
        if 12 * len(indices) + 28 < 8 * pos + 12:  # Vectors.compressedWithNNZ
            row[self.outputs[0]] = _Vec(pos, indices, values)
        else:
            dense = [0.0] * pos
            for i, x in zip(indices, values, strict=True):
                dense[i] = x
            row[self.outputs[0]] = _Vec(pos, None, dense)

    def _invalid(self, column: str, what: str) -> ScoreInputError:
        verdict = "fails" if self.handle == "error" else "drops the row"
        return ScoreInputError(
            column,
            f"{what} where the model needs a value: Spark {verdict} (VectorAssembler "
            f"handleInvalid={self.handle})",
        )


class _StandardScaler(_Stage):
    def __init__(self, meta: _Meta) -> None:
        self.meta = meta
        self.with_mean = _choice(meta, "withMean", (True, False), False)
        self.with_std = _choice(meta, "withStd", (True, False), True)
        self.inputs = [meta.param("inputCol")]
        self.outputs = [meta.param("outputCol")]
        row = _one_row(meta, ["std", "mean"])
        self.shift = _vector(meta, "mean", row["mean"]).dense()
        std = _vector(meta, "std", row["std"]).dense()
        self.scale = [0.0 if s == 0 else 1.0 / s for s in std]

    def bind(self, schema: _Schema) -> None:
        col = self.inputs[0]
        if schema.type_of(self.meta, col) != _VECTOR:
            raise ScorerError(f"{self.meta.where}: input column {col} is not a vector")
        if schema.sizes[col] != len(self.scale):
            raise ScorerError(
                f"{self.meta.where}: fitted on {len(self.scale)} features, its input "
                f"{col} has {schema.sizes[col]}"
            )
        schema.add(self.outputs[0], _VECTOR, self.outputs[0], len(self.scale))

    def apply(self, row: dict[str, Any]) -> None:
        v: _Vec = row[self.inputs[0]]
        shift, scale = self.shift, self.scale
        if self.with_mean:
            vals = v.dense()
            if self.with_std:
                out = _Vec(v.size, None, [(x - shift[i]) * scale[i] for i, x in enumerate(vals)])
            else:
                out = _Vec(v.size, None, [x - shift[i] for i, x in enumerate(vals)])
        elif self.with_std:
            if v.indices is None:
                out = _Vec(v.size, None, [x * scale[i] for i, x in enumerate(v.values)])
            else:
                vals = [x * scale[i] for i, x in zip(v.indices, v.values, strict=True)]
                out = _Vec(v.size, v.indices, vals)
        else:
            out = v
        row[self.outputs[0]] = out


# --- predictors --------------------------------------------------------------------------------


class _Predictor:
    meta: _Meta
    task: str
    num_classes: int | None = None
    num_features: int

    def __init__(self, meta: _Meta, lanes: int) -> None:
        self.meta = meta
        self.lanes = lanes
        self.features_col = meta.param("featuresCol")

    def predict(self, features: _Vec) -> Scored:
        raise NotImplementedError


class _Classifier(_Predictor):
    """ProbabilisticClassificationModel.transform: rawPrediction, probability from it, and the
    prediction from rawPrediction (argmax, or probability / thresholds when thresholds are set)."""

    task = "classification"

    def _init_classes(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.thresholds: list[float] | None = None
        if self.meta.is_set("thresholds"):
            ts = [float(t) for t in self.meta.param("thresholds")]
            if len(ts) != num_classes:
                raise self.meta.unsupported(
                    "thresholds", ts, f"one threshold per class ({num_classes})"
                )
            self.thresholds = ts
        self.raw_col = bool(self.meta.param("rawPredictionCol", "rawPrediction"))
        self.probability_col = bool(self.meta.param("probabilityCol", "probability"))

    def raw(self, features: _Vec) -> list[float]:
        raise NotImplementedError

    def raw_to_probability(self, raw: list[float]) -> list[float]:
        raise NotImplementedError

    def raw_to_prediction(self, raw: list[float]) -> float:
        if self.thresholds is None:
            return float(_argmax(raw))
        return self.probability_to_prediction(self.raw_to_probability(raw))

    def probability_to_prediction(self, prob: list[float]) -> float:
        if self.thresholds is None:
            return float(_argmax(prob))
        best, arg = -math.inf, 0
        for i, (p, t) in enumerate(zip(prob, self.thresholds, strict=True)):
            scaled = p / t if t != 0 else (math.inf if p > 0 else math.nan if p == 0 else -math.inf)
            if scaled > best:
                best, arg = scaled, i
        return float(arg)

    def predict(self, features: _Vec) -> Scored:
        raw = self.raw(features)
        prob = self.raw_to_probability(list(raw))
        if self.raw_col:
            prediction = self.raw_to_prediction(raw)
        elif self.probability_col:
            prediction = self.probability_to_prediction(prob)
        else:
            prediction = self.predict_direct(features)
        return Scored(prediction, tuple(prob), tuple(raw))

    def predict_direct(self, features: _Vec) -> float:
        return self.raw_to_prediction(self.raw(features))


def _argmax(values: Sequence[float]) -> int:
    """DenseVector.argmax: the first maximum."""
    arg, best = 0, values[0]
    for i in range(1, len(values)):
        if values[i] > best:
            arg, best = i, values[i]
    return arg


def _normalize(values: list[float], meta: _Meta) -> list[float]:
    """ProbabilisticClassificationModel.normalizeToProbabilitiesInPlace."""
    total = _seq_sum(values)
    if not total > 0:
        raise ScorerError(f"{meta.where}: raw prediction {values} cannot be normalized")
    return [v / total for v in values]


class _LinearRegression(_Predictor):
    task = "regression"

    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        row = _one_row(meta, ["intercept", "coefficients"])
        self.intercept = float(row["intercept"])
        self.coefficients = _vector(meta, "coefficients", row["coefficients"])
        self.num_features = self.coefficients.size

    def predict(self, features: _Vec) -> Scored:
        return Scored(_dot(features, self.coefficients, self.lanes) + self.intercept, None)


class _LogisticRegression(_Classifier):
    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        fields = ["numClasses", "numFeatures", "interceptVector", "coefficientMatrix"]
        row = _one_row(meta, [*fields, "isMultinomial"])
        self.multinomial = bool(row["isMultinomial"])
        self.num_features = int(row["numFeatures"])
        intercepts = _vector(meta, "interceptVector", row["interceptVector"]).dense()
        m = row["coefficientMatrix"]
        self.rows, self.cols = int(m["numRows"]), int(m["numCols"])
        self.transposed = bool(m["isTransposed"])
        self._init_classes(int(row["numClasses"]))
        if self.multinomial:
            self.intercepts = intercepts
            self.margins = self._matrix_margins(m)
        else:
            if not self.transposed:
                raise ScorerError(f"{meta.where}: a binomial coefficientMatrix must be row major")
            if m["type"] == 1:
                self.coefficients = _Vec(self.cols, None, [float(v) for v in m["values"]])
            else:
                vals = [float(v) for v in m["values"]]
                self.coefficients = _Vec(self.cols, list(m["rowIndices"]), vals)
            self.intercept = intercepts[0]
            self.bin_thresholds = self._binary_thresholds()

    def _binary_thresholds(self) -> tuple[float, float]:
        """LogisticRegressionModel._binaryThresholds: (threshold, its logit)."""
        if self.meta.is_set("thresholds"):
            t0, t1 = (float(t) for t in self.meta.param("thresholds"))
            t = 0.0 if t1 == 0 else 1.0 / (1.0 + t0 / t1)  # Java: 1 / (1 + Infinity)
        elif self.meta.is_set("threshold"):
            t = float(self.meta.param("threshold"))
        else:
            return 0.5, 0.0
        if t == 0.0:
            return t, -math.inf
        if t == 1.0:
            return t, math.inf
        return t, math.log(t / (1.0 - t))

    def _matrix_margins(self, m: Mapping[str, Any]) -> Callable[[_Vec], list[float]]:
        """BLAS.gemv(1.0, coefficientMatrix, features, 1.0, intercepts), case by case."""
        vals = [float(v) for v in m["values"]]
        n_rows, n_cols, lanes = self.rows, self.cols, self.lanes
        if m["type"] == 1:
            if self.transposed:
                by_row = [vals[r * n_cols : (r + 1) * n_cols] for r in range(n_rows)]
            else:  # column major (Spark trains row major): per row, maybe not bit for bit
                by_row = [vals[r::n_rows] for r in range(n_rows)]

            def dense_matrix(x: _Vec) -> list[float]:
                if x.indices is None:  # netlib dgemvT: a VectorBLAS dot per row
                    return [
                        _simd_dot(x.values, by_row[r], lanes) + self.intercepts[r]
                        for r in range(n_rows)
                    ]
                out = []
                for r in range(n_rows):
                    total, coef = 0.0, by_row[r]
                    for k in range(len(x.indices)):
                        total += x.values[k] * coef[x.indices[k]]
                    out.append(total + self.intercepts[r])
                return out

            return dense_matrix
        ptrs, idx = list(m["colPtrs"]), list(m["rowIndices"])
        if self.transposed:  # CSR: ptrs over rows, idx = columns

            def csr(x: _Vec) -> list[float]:
                out = []
                for r in range(n_rows):
                    coef = _Vec(n_cols, idx[ptrs[r] : ptrs[r + 1]], vals[ptrs[r] : ptrs[r + 1]])
                    if x.indices is None:
                        total = 0.0
                        for i, c in zip(coef.indices, coef.values, strict=True):
                            total += c * x.values[i]
                    else:
                        total = _dot(coef, x, lanes)  # both sparse: matching indices, in order
                    out.append(self.intercepts[r] + total)
                return out

            return csr

        def csc(x: _Vec) -> list[float]:  # y starts at the intercepts; columns added in order
            y = list(self.intercepts)
            entries = (
                enumerate(x.values) if x.indices is None else zip(x.indices, x.values, strict=True)
            )
            for col, xv in entries:
                xv = xv * 1.0
                for i in range(ptrs[col], ptrs[col + 1]):
                    y[idx[i]] += vals[i] * xv
            return y

        return csc

    def raw(self, features: _Vec) -> list[float]:
        if self.multinomial:
            return self.margins(features)
        m = _dot(features, self.coefficients, self.lanes) + self.intercept
        return [-m, m]

    def raw_to_probability(self, raw: list[float]) -> list[float]:
        if not self.multinomial:
            p0 = 1.0 / (1.0 + _exp(-raw[0]))
            return [p0, 1.0 - p0]
        return _softmax(raw)

    def raw_to_prediction(self, raw: list[float]) -> float:
        if self.multinomial:
            return super().raw_to_prediction(raw)
        return 1.0 if raw[1] > self.bin_thresholds[1] else 0.0

    def probability_to_prediction(self, prob: list[float]) -> float:
        if self.multinomial:
            return super().probability_to_prediction(prob)
        return 1.0 if prob[1] > self.bin_thresholds[0] else 0.0

    def predict_direct(self, features: _Vec) -> float:
        if self.multinomial:
            return super().predict_direct(features)
        m = _dot(features, self.coefficients, self.lanes) + self.intercept
        return 1.0 if 1.0 / (1.0 + _exp(-m)) > self.bin_thresholds[0] else 0.0


def _softmax(values: list[float]) -> list[float]:
    """ml.impl.Utils.softmax."""
    top = -1.7976931348623157e308  # Double.MinValue
    for i, v in enumerate(values):
        if v == math.inf:
            out = [0.0 * x for x in values]
            out[i] = 1.0
            return out
        if v > top:
            top = v
    exps = [_exp(v - top) for v in values]
    scale = 1.0 / _seq_sum(exps)
    return [scale * e for e in exps]


# --- trees ---------------------------------------------------------------------------------


class _Tree:
    """One decision tree, flattened: node i is a leaf when feature[i] < 0."""

    __slots__ = ("categories", "feature", "leaf", "left", "right", "threshold")

    def __init__(self, where: str, nodes: list[Mapping[str, Any]], leaf: Callable) -> None:
        nodes = sorted(nodes, key=lambda n: n["id"])
        if [n["id"] for n in nodes] != list(range(len(nodes))):
            raise ScorerError(f"{where}: tree node ids are not 0..{len(nodes) - 1}")
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.categories: list[tuple[frozenset[float], bool] | None] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.leaf: list[Any] = []
        for n in nodes:
            split = n["split"]
            internal = n["leftChild"] != -1
            self.left.append(n["leftChild"])
            self.right.append(n["rightChild"])
            self.leaf.append(None if internal else leaf(n))
            if not internal:
                self.feature.append(-1)
                self.threshold.append(math.nan)
                self.categories.append(None)
                continue
            self.feature.append(int(split["featureIndex"]))
            num_cats = int(split["numCategories"])
            bounds = [float(v) for v in split["leftCategoriesOrThreshold"]]
            if num_cats == -1:
                self.threshold.append(bounds[0])
                self.categories.append(None)
            else:  # CategoricalSplit keeps the smaller side: left set, or right set negated
                self.threshold.append(math.nan)
                is_left = len(bounds) <= num_cats // 2
                cats = set(bounds) if is_left else set(map(float, range(num_cats))) - set(bounds)
                self.categories.append((frozenset(cats), is_left))

    def leaf_of(self, x: Sequence[float]) -> Any:
        feature, threshold, categories = self.feature, self.threshold, self.categories
        left, right = self.left, self.right
        i = 0
        while True:
            f = feature[i]
            if f < 0:
                return self.leaf[i]
            cat = categories[i]
            if cat is None:
                go_left = x[f] <= threshold[i]
            else:
                go_left = (x[f] in cat[0]) == cat[1]
            i = left[i] if go_left else right[i]


def _load_trees(
    meta: _Meta, leaf: Callable[[Mapping[str, Any]], Any]
) -> tuple[list[_Tree], list[float]]:
    """data/ (treeID, nodeData) and treesMetadata/ (treeID, metadata JSON, weight)."""
    by_tree: dict[int, list[Mapping[str, Any]]] = {}
    for r in _read_rows(meta, "data"):
        by_tree.setdefault(int(r["treeID"]), []).append(r["nodeData"])
    weights = {int(r["_1"]): float(r["_3"]) for r in _read_rows(meta, "treesMetadata")}
    ids = sorted(weights)
    if ids != list(range(len(ids))) or sorted(by_tree) != ids:
        raise ScorerError(f"{meta.where}: trees in data/ and treesMetadata/ do not match")
    trees = [_Tree(f"{meta.where} tree {t}", by_tree[t], leaf) for t in ids]
    return trees, [weights[t] for t in ids]


def _check_num_trees(meta: _Meta, trees: list[_Tree]) -> None:
    expected = meta.extra.get("numTrees")
    if expected is not None and int(expected) != len(trees):
        raise ScorerError(f"{meta.where}: metadata says {expected} trees, data/ has {len(trees)}")


def _leaf_prediction(node: Mapping[str, Any]) -> float:
    return float(node["prediction"])


def _tree_features(features: _Vec) -> list[float]:
    return features.dense()


class _RandomForestRegression(_Predictor):
    task = "regression"

    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        self.trees, _ = _load_trees(meta, _leaf_prediction)
        _check_num_trees(meta, self.trees)
        self.num_features = int(meta.extra.get("numFeatures", -1))

    def predict(self, features: _Vec) -> Scored:
        x = _tree_features(features)
        total = 0.0
        for t in self.trees:
            total += t.leaf_of(x)
        return Scored(total / len(self.trees), None)


class _GBTRegression(_Predictor):
    task = "regression"

    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        self.trees, self.weights = _load_trees(meta, _leaf_prediction)
        _check_num_trees(meta, self.trees)
        self.num_features = int(meta.extra.get("numFeatures", -1))

    def margin(self, features: _Vec) -> float:
        x = _tree_features(features)
        return _simd_dot([t.leaf_of(x) for t in self.trees], self.weights, self.lanes)

    def predict(self, features: _Vec) -> Scored:
        return Scored(self.margin(features), None)


class _RandomForestClassification(_Classifier):
    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        num_classes = int(meta.extra.get("numClasses", -1))
        if num_classes < 2:
            raise ScorerError(f"{meta.where}: numClasses missing from its metadata")
        self._init_classes(num_classes)
        self.trees, _ = _load_trees(meta, self._leaf_votes)
        _check_num_trees(meta, self.trees)
        self.num_features = int(meta.extra.get("numFeatures", -1))

    def _leaf_votes(self, node: Mapping[str, Any]) -> tuple[float, ...] | None:
        counts = [float(c) for c in node["impurityStats"]]
        if len(counts) != self.num_classes:
            raise ScorerError(f"{self.meta.where}: a leaf has {len(counts)} class counts")
        total = _seq_sum(counts)
        return None if total == 0 else tuple(c / total for c in counts)

    def raw(self, features: _Vec) -> list[float]:
        x = _tree_features(features)
        votes = [0.0] * (self.num_classes or 0)
        for t in self.trees:
            leaf = t.leaf_of(x)
            if leaf is not None:
                for i, v in enumerate(leaf):
                    votes[i] += v
        return votes

    def raw_to_probability(self, raw: list[float]) -> list[float]:
        return _normalize(raw, self.meta)


class _GBTClassification(_Classifier):
    def __init__(self, meta: _Meta, lanes: int) -> None:
        super().__init__(meta, lanes)
        _choice(meta, "lossType", ("logistic",), "logistic")
        self._init_classes(2)
        self.trees, self.weights = _load_trees(meta, _leaf_prediction)
        _check_num_trees(meta, self.trees)
        self.num_features = int(meta.extra.get("numFeatures", -1))

    def raw(self, features: _Vec) -> list[float]:
        x = _tree_features(features)
        m = _simd_dot([t.leaf_of(x) for t in self.trees], self.weights, self.lanes)
        return [-m, m]

    def raw_to_probability(self, raw: list[float]) -> list[float]:
        p0 = 1.0 / (1.0 + _exp(-2.0 * raw[0]))  # LogLoss.computeProbability
        return [p0, 1.0 - p0]


_TRANSFORMERS: dict[str, Callable[[_Meta], _Stage]] = {
    _ML + "feature.ImputerModel": _Imputer,
    _ML + "feature.StringIndexerModel": _StringIndexer,
    _ML + "feature.OneHotEncoderModel": _OneHotEncoder,
    _ML + "feature.VectorAssembler": _VectorAssembler,
    _ML + "feature.StandardScalerModel": _StandardScaler,
}
_PREDICTORS: dict[str, Callable[[_Meta, int], _Predictor]] = {
    _ML + "regression.LinearRegressionModel": _LinearRegression,
    _ML + "classification.LogisticRegressionModel": _LogisticRegression,
    _ML + "regression.RandomForestRegressionModel": _RandomForestRegression,
    _ML + "classification.RandomForestClassificationModel": _RandomForestClassification,
    _ML + "regression.GBTRegressionModel": _GBTRegression,
    _ML + "classification.GBTClassificationModel": _GBTClassification,
}


# --- raw inputs --------------------------------------------------------------------------------


def _coercer(column: str, type_: str) -> Callable[[Any], Any]:
    """The record's value as the Spark column of `type_` would hold it (None stays None)."""

    def wrong(v: Any) -> ScoreInputError:
        return ScoreInputError(column, f"{type(v).__name__} {v!r} given for a {type_} column")

    if type_ == "string":

        def to_string(v: Any) -> Any:
            if v is None or isinstance(v, str):
                return v
            raise wrong(v)

        return to_string
    if type_ == "boolean":

        def to_bool(v: Any) -> Any:
            if v is None or isinstance(v, bool):
                return v
            raise wrong(v)

        return to_bool
    if type_ in _INT_BITS:
        bits = _INT_BITS[type_]
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

        def to_int(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise wrong(v)
            if isinstance(v, float):
                if not v.is_integer():
                    raise wrong(v)
                v = int(v)
            if not lo <= v <= hi:
                raise ScoreInputError(column, f"{v} is outside the {type_} range")
            return v

        return to_int

    def to_double(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise wrong(v)
        try:
            x = float(v)
        except OverflowError:
            raise ScoreInputError(column, f"{v} is outside the {type_} range") from None
        return _to_float32(x) if type_ == "float" else x

    return to_double


# --- the scorer --------------------------------------------------------------------------------


class PipelineScorer:
    """A loaded PipelineModel folder: `score(records)` gives what Spark's transform gives."""

    def __init__(
        self,
        path: Path,
        stages: list[_Stage],
        predictor: _Predictor,
        input_columns: list[str],
        coercers: list[tuple[str, Callable[[Any], Any]]],
        spark_version: str,
    ) -> None:
        self.path = path
        self.input_columns = input_columns
        self.task = predictor.task
        self.num_classes = predictor.num_classes
        self.estimator = predictor.meta.name
        self.spark_version = spark_version
        self.stages = tuple(s.meta.name for s in [*stages, predictor])
        self._applies = [s.apply for s in stages]
        self._predictor = predictor
        self._features = predictor.features_col
        self._coercers = coercers

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        input_types: Mapping[str, str],
        *,
        simd_lanes: int | None = None,
    ) -> PipelineScorer:
        """Read a local folder written by `PipelineModel.save`. `input_types`: raw input column
        -> Spark simpleString type (int, bigint, smallint, tinyint, double, float, string,
        boolean); every column the model reads needs one. `simd_lanes`: the JVM's doubles per
        SIMD vector where Spark scored (default: this machine's, see `jvm_simd_lanes`)."""
        root = Path(path)
        if not root.is_dir():
            raise ScorerError(f"{root}: no such folder (a PipelineModel.save() folder)")
        meta = _read_metadata(root)
        if meta.cls != _ML + "PipelineModel":
            raise ScorerError(f"{root}: holds a {meta.cls}, not an {_ML}PipelineModel")
        _check_version(meta)
        lanes = jvm_simd_lanes() if simd_lanes is None else simd_lanes
        if lanes not in (2, 4, 8, 16):
            raise ScorerError(f"simd_lanes={lanes}: give 2, 4, 8 or 16 (doubles per SIMD vector)")
        metas = _stage_metas(root, meta)
        stages: list[_Stage] = []
        for i, m in enumerate(metas[:-1]):
            if m.cls not in _TRANSFORMERS:
                raise _unknown_stage(i, m, m.cls in _PREDICTORS)
            stages.append(_TRANSFORMERS[m.cls](m))
        last = metas[-1]
        if last.cls not in _PREDICTORS:
            raise _unknown_stage(len(metas) - 1, last, last.cls in _TRANSFORMERS)
        predictor = _PREDICTORS[last.cls](last, lanes)
        inputs = _first_use(stages)
        schema = _input_schema(root, inputs, input_types)
        for s in stages:
            s.bind(schema)
        fcol = predictor.features_col
        if schema.types.get(fcol) != _VECTOR:
            raise ScorerError(f"{last.where}: featuresCol {fcol!r} is not a vector the stages make")
        if predictor.num_features not in (-1, schema.sizes[fcol]):
            raise ScorerError(
                f"{last.where}: fitted on {predictor.num_features} features, the stages "
                f"assemble {schema.sizes[fcol]}"
            )
        coercers = [(c, _coercer(c, schema.types[c])) for c in inputs]
        scorer = cls(root, stages, predictor, inputs, coercers, meta.spark_version)
        log.info(
            "loaded %s (Spark %s): %s; inputs %s; %d SIMD lanes",
            root,
            meta.spark_version,
            " -> ".join(scorer.stages),
            inputs,
            lanes,
        )
        return scorer

    def score(self, records: Sequence[Mapping[str, Any]]) -> list[Scored]:
        """Score each record (raw input values as Python types; extra keys are ignored)."""
        out: list[Scored] = []
        for n, record in enumerate(records):
            try:
                out.append(self._score_one(record))
            except ScoreInputError as e:
                raise ScoreInputError(e.column, e.reason, n) from None
        return out

    def _score_one(self, record: Mapping[str, Any]) -> Scored:
        if not isinstance(record, Mapping):
            raise ScoreInputError(None, f"a record is a mapping, not a {type(record).__name__}")
        row: dict[str, Any] = {}
        for col, coerce in self._coercers:
            try:
                value = record[col]
            except KeyError:
                raise ScoreInputError(
                    col, "missing from the record (send null for no value)"
                ) from None
            row[col] = coerce(value)
        for apply in self._applies:
            apply(row)
        return self._predictor.predict(row[self._features])


def _stage_metas(root: Path, meta: _Meta) -> list[_Meta]:
    """The stages' metadata, from stages/<i>_<uid>/ (i zero-padded to the count's digits)."""
    uids = meta.set_params.get("stageUids")
    if not uids:
        raise ScorerError(f"{root}: the pipeline's metadata lists no stageUids")
    digits = len(str(len(uids)))
    metas = []
    for i, uid in enumerate(uids):
        folder = root / "stages" / f"{i:0{digits}d}_{uid}"
        if not folder.is_dir():
            raise ScorerError(f"{root}: stage {i} ({uid}) has no folder {folder}")
        m = _read_metadata(folder)
        _check_version(m)
        metas.append(m)
    return metas


def _unknown_stage(i: int, meta: _Meta, misplaced: bool) -> ScorerError:
    if misplaced:
        where = "the last stage" if meta.cls in _TRANSFORMERS else "before the last stage"
        return ScorerError(f"stage {i}: {meta.where}: this scorer does not read it {where}")
    known = sorted(c.rsplit(".", 1)[-1] for c in [*_TRANSFORMERS, *_PREDICTORS])
    return ScorerError(
        f"stage {i}: {meta.where}: {meta.cls} is not a stage this scorer supports "
        f"(supported: {', '.join(known)})"
    )


def _first_use(stages: list[_Stage]) -> list[str]:
    """The raw columns the stages read, in first-use order."""
    made: set[str] = set()
    inputs: list[str] = []
    for s in stages:
        for c in s.inputs:
            if c not in made and c not in inputs:
                inputs.append(c)
        made.update(s.outputs)
    return inputs


def _input_schema(root: Path, inputs: list[str], input_types: Mapping[str, str]) -> _Schema:
    schema = _Schema({}, {}, {})
    for col in inputs:
        t = input_types.get(col)
        if t is None:
            raise ScorerError(
                f"input_types has no type for column {col!r}, which the model reads "
                f"({root}); give its Spark type (e.g. 'double', 'string')"
            )
        if t not in INPUT_TYPES:
            raise ScorerError(
                f"input_types[{col!r}] = {t!r}: not a type this scorer reads "
                f"({', '.join(sorted(INPUT_TYPES))})"
            )
        schema.add(col, t, col)
    return schema
