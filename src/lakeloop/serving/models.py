"""The registry's champion and challenger as loaded scorers, for the online server.

`load_model` downloads a registered version's MLflow artifact once into the model cache, reads
its input signature (every input column's MLflow type and `required` flag, written at training
by `ml.model_log.input_signature`) and loads its Spark pipeline with the JVM-free scorer.

`ModelHolder` keeps the pair as one immutable `Snapshot`, replaced by a single attribute
assignment: a request reads `holder.snapshot` once and scores with what it got, whatever a
reload does meanwhile. A background thread polls the `champion` and `challenger` aliases every
`serving.poll_interval_s`; a moved alias is loaded completely before the swap, and a failed
load (or registry look-up) keeps the version being served (logged, counted in
`load_failures`).

The value converters (`convert`) turn a JSON value into the value Spark holds for the column's
type, so the online scores equal the batch path's. No Spark here."""

from __future__ import annotations

import logging
import math
import shutil
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from lakeloop.config import AppConfig
from lakeloop.ml import tracking
from lakeloop.ml.tracking import ModelRef
from lakeloop.serving.scorer import PipelineScorer, ScorerError
from lakeloop.spec import Pipeline

log = logging.getLogger(__name__)

# MLflow column type (the signature's) -> Spark simpleString (what the scorer reads)
SPARK_TYPES = {
    "integer": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
}
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_FLOAT32 = struct.Struct("f")


class ValueTypeError(ValueError):
    """A JSON value that is not of a model input column's type; the message is the reason."""


def _json_kind(v: Any) -> str:
    """A value's JSON type, for error messages."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return f"a {type(v).__name__}"


def _integer(kind: str) -> Callable[[Any], int]:
    lo, hi = _INT_RANGES[kind]

    def convert(v: Any) -> int:
        if type(v) is int:  # bool is an int subclass: not accepted
            x = v
        elif type(v) is float and v.is_integer():  # 3.0 is the integer 3
            x = int(v)
        elif type(v) is float:
            raise ValueTypeError(f"expected an {kind}, got {v!r} (a number with a fraction)")
        else:
            raise ValueTypeError(f"expected an {kind}, got {_json_kind(v)}")
        if not lo <= x <= hi:
            raise ValueTypeError(f"{x} is out of the {kind} range [{lo}, {hi}]")
        return x

    return convert


def _double(v: Any) -> float:
    if type(v) is float:
        x = v
    elif type(v) is int:
        try:
            x = float(v)
        except OverflowError:
            raise ValueTypeError(f"{v} is out of the double range") from None
    else:
        raise ValueTypeError(f"expected a number, got {_json_kind(v)}")
    if not math.isfinite(x):
        raise ValueTypeError(f"expected a finite number, got {v!r}")
    return x


def _float(v: Any) -> float:
    """A float column holds 32-bit floats: the value rounded as Spark stores it."""
    x = _double(v)
    try:
        y = _FLOAT32.unpack(_FLOAT32.pack(x))[0]
    except OverflowError:
        y = math.inf
    if math.isinf(y):
        raise ValueTypeError(f"{v!r} is out of the float (32-bit) range")
    return y


def _string(v: Any) -> str:
    if type(v) is not str:
        raise ValueTypeError(f"expected a string, got {_json_kind(v)}")
    return v


def _boolean(v: Any) -> bool:
    if type(v) is not bool:
        raise ValueTypeError(f"expected a boolean (true/false), got {_json_kind(v)}")
    return v


# MLflow column type -> JSON value -> the Python value Spark holds for it (ValueTypeError)
CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "integer": _integer("integer"),
    "long": _integer("long"),
    "float": _float,
    "double": _double,
    "string": _string,
    "boolean": _boolean,
}


def convert(kind: str, value: Any) -> Any:
    """`value` (not None) as the value Spark holds in a column of MLflow type `kind`.
    Integers: JSON integers, or numbers without a fraction (3.0), in range; floats/doubles:
    any finite JSON number; strings: strings only; booleans: true/false only. A boolean is
    never a number (`true` for a numeric column is a ValueTypeError), a number never a
    string."""
    return CONVERTERS[kind](value)


@dataclass(frozen=True)
class InputColumn:
    name: str
    kind: str  # MLflow type: integer, long, float, double, string, boolean
    required: bool
    convert: Callable[[Any], Any]  # CONVERTERS[kind]

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES[self.kind]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A registered version ready to score: its ref, scorer and input columns (in the
    signature's order)."""

    ref: ModelRef
    scorer: PipelineScorer
    columns: tuple[InputColumn, ...]

    @cached_property
    def names(self) -> frozenset[str]:
        """The input columns' names."""
        return frozenset(c.name for c in self.columns)

    @property
    def task(self) -> str:
        return self.scorer.task

    @property
    def inputs(self) -> dict[str, tuple[str, bool]]:
        """Input column -> (MLflow type, required)."""
        return {c.name: (c.kind, c.required) for c in self.columns}


def _download(client: MlflowClient, ref: ModelRef, folder: Path) -> None:
    """The version's `model` artifact into `folder`/model, complete or not at all: downloaded
    to a temporary folder beside it, then renamed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with tracking.no_progress_bar():
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{ref.run_id}/{tracking.MODEL_ARTIFACT}",
                dst_path=str(tmp),
                tracking_uri=client.tracking_uri,
            )
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():  # not another process's complete download
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _columns(ref: ModelRef, mlmodel: Model) -> tuple[InputColumn, ...]:
    what = f"model {ref.name} v{ref.version}"
    sig = mlmodel.signature
    if sig is None or sig.inputs is None:
        raise ScorerError(
            f"{what} has no input signature: it was trained before lakeloop recorded its "
            "inputs (column types and which may be null); retrain it to serve it online"
        )
    cols = []
    for spec in sig.inputs.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        if spec.name is None or kind not in CONVERTERS:
            raise ScorerError(
                f"{what}: signature input {spec.name!r} has type {kind}; the server takes "
                f"named columns of {', '.join(CONVERTERS)}"
            )
        cols.append(InputColumn(spec.name, kind, bool(spec.required), CONVERTERS[kind]))
    return tuple(cols)


def load_model(client: MlflowClient, ref: ModelRef, cache_dir: Path) -> LoadedModel:
    """The registered version `ref` as a scorer: its artifact downloaded into
    `cache_dir/<name>-v<version>` (skipped when already there: a folder there is complete),
    its signature read, its Spark pipeline loaded. ScorerError when it cannot be served."""
    folder = Path(cache_dir) / f"{ref.name}-v{ref.version}"
    if not folder.is_dir():
        log.info("downloading %s v%d (run %s) to %s", ref.name, ref.version, ref.run_id, folder)
        _download(client, ref, folder)
    model_dir = folder / tracking.MODEL_ARTIFACT
    if not (model_dir / "MLmodel").is_file():
        raise ScorerError(
            f"model {ref.name} v{ref.version}: {model_dir} holds no MLmodel file; delete "
            f"{folder} to download it again"
        )
    columns = _columns(ref, Model.load(str(model_dir / "MLmodel")))
    scorer = PipelineScorer.load(model_dir / "sparkml", {c.name: c.spark_type for c in columns})
    missing = sorted(set(scorer.input_columns) - {c.name for c in columns})
    if missing:
        raise ScorerError(
            f"model {ref.name} v{ref.version}: the pipeline reads {missing}, which its "
            "signature does not list; retrain it"
        )
    return LoadedModel(ref, scorer, columns)


@dataclass(frozen=True)
class Snapshot:
    """What the server scores with: one consistent (champion, challenger) pair."""

    champion: LoadedModel | None
    challenger: LoadedModel | None
    reason: str | None = None  # why there is no champion

    def get(self, alias: str) -> LoadedModel | None:
        return self.champion if alias == tracking.CHAMPION else self.challenger


Loader = Callable[[MlflowClient, ModelRef, Path], LoadedModel]


class ModelHolder:
    """The served champion/challenger (`snapshot`), kept current by polling the registry
    (`start` ... `stop`; `refresh` polls once, for tests and the first load)."""

    def __init__(
        self,
        client: MlflowClient,
        model_name: str,
        cache_dir: Path,
        poll_interval_s: float,
        loader: Loader = load_model,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.cache_dir = Path(cache_dir)
        self.poll_interval_s = poll_interval_s
        self._loader = loader
        self.snapshot = Snapshot(None, None, f"model {model_name} is not loaded yet")
        self.load_failures = 0  # failed registry look-ups and model loads
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one refresh at a time (poller vs refresh())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: AppConfig, pipeline: Pipeline) -> ModelHolder:
        model = pipeline.spec.model
        if model is None:
            raise ScorerError(f"pipeline {pipeline.name} has no `model` section: nothing to serve")
        return cls(
            tracking.configure(cfg),
            model.name,
            cfg.path(cfg.serving.model_cache),
            cfg.serving.poll_interval_s,
        )

    def refresh(self) -> Snapshot:
        """Look both aliases up once; load what moved, then swap in the new pair at once."""
        with self._lock:
            current = self.snapshot
            champion, reason = self._resolve(tracking.CHAMPION, current.champion)
            challenger, _ = self._resolve(tracking.CHALLENGER, current.challenger)
            new = Snapshot(champion, challenger, reason)
            if new != current:
                self.snapshot = new  # the swap: one attribute assignment
            return self.snapshot

    def _failed(self, message: str) -> None:
        self.load_failures += 1
        self.last_error = message

    def _resolve(
        self, alias: str, current: LoadedModel | None
    ) -> tuple[LoadedModel | None, str | None]:
        """The model to serve under `alias` (None: none, with the reason)."""
        name = self.model_name
        try:
            ref = tracking.by_alias(self.client, name, alias)
        except Exception as e:  # the registry unreachable: keep what is served
            self._failed(f"registry look-up of {name}@{alias} failed: {e}")
            log.error("%s; still serving %s", self.last_error, _describe(current))
            return current, self.last_error if current is None else None
        if ref is None:
            if current is not None:
                log.warning("%s %s v%d: the alias was removed", alias, name, current.ref.version)
            return None, f"no {alias} model {name} in the registry (no version has the alias)"
        if current is not None and current.ref == ref:
            return current, None
        try:
            loaded = self._loader(self.client, ref, self.cache_dir)
        except Exception as e:
            self._failed(f"{alias} {name} v{ref.version} failed to load: {e}")
            log.exception("%s; still serving %s", self.last_error, _describe(current))
            return current, None if current is not None else self.last_error
        log.info("serving %s v%d as %s (was %s)", name, ref.version, alias, _describe(current))
        return loaded, None

    def start(self) -> None:
        """Load the current aliases, then poll in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            except Exception:  # never let the poller die
                self._failed("model poll failed")
                log.exception("model poll failed")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling (waits for a load in progress, up to `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


def _describe(model: LoadedModel | None) -> str:
    return "nothing" if model is None else f"v{model.ref.version}"
