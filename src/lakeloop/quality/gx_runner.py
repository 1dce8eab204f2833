"""Run the table-level expectations of a GX 1.x suite on a Spark DataFrame, through GX itself.

Row-level rules are compiled to Spark expressions elsewhere (`lakeloop.quality.rules`); the
aggregate ones (row counts, column means/medians/max, uniqueness proportions, column sets)
run here through a throw-away ephemeral GX context: Spark data source -> DataFrame asset ->
whole-DataFrame batch definition -> ValidationDefinition -> Checkpoint. When `docs_dir` is
given, GX renders its Data Docs (static HTML) into that folder after the Checkpoint ran
(`build_data_docs`, as its UpdateDataDocsAction would); `TableValidation.docs_index` is the
`index.html` to open.

The Data Docs show the whole suite and open offline (`lakeloop.quality.datadocs`): the outcomes
of the row-level rules, which lakeloop evaluates itself, are passed in as `row_level` and added
to the same GX validation result (and their expectations to the suite the site shows) before
the site is rendered; then the site gets local copies of the CSS/JS/fonts GX links from CDNs
(vendored by `lakeloop setup`; without them the pages keep the CDN links and a warning says
what to run).

Every call builds its own in-memory context (definition names carry a uuid suffix too), so
calling it repeatedly in one process with the same suite and run name is safe. With `docs_dir`,
GX's JSON validation results are kept under `docs_dir/.gx_validation_results/` so the site's
index keeps listing earlier runs. An expectation type GX does not know, kwargs GX rejects, or a
non-boolean `meta.blocking` is a ValueError naming the type: nothing is skipped silently.
"""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeloop.quality import datadocs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from lakeloop.quality.datadocs import RowRuleResult

logger = logging.getLogger(__name__)

# GX reads this when a context is created; set it before `great_expectations` is imported so
# no context ever tries to send usage statistics (the config flag below covers it too).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

DOCS_SITE_NAME = "lakeloop_docs"
RESULTS_SUBDIR = ".gx_validation_results"  # under docs_dir: GX's JSON results behind the pages
DATA_SOURCE_NAME = "lakeloop_spark"  # data source and asset names show in Data Docs as the
ASSET_NAME = "dataframe"  # batch ("lakeloop_spark-dataframe"); each call has its own context
_OBSERVED_MAX_CHARS = 200


@dataclass(frozen=True)
class ExpectationOutcome:
    type: str  # e.g. "expect_table_row_count_to_be_between"
    kwargs: dict[str, Any]  # the expectation's kwargs, as given in the suite
    success: bool
    blocking: bool  # meta {"blocking": true} in the suite; default False
    observed: str | None  # GX's observed_value as short text (or its error), if any


@dataclass(frozen=True)
class TableValidation:
    suite_name: str
    success: bool  # every expectation passed
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    # Data Docs index.html; None when no docs were built (validate swaps in its storage URI)
    docs_index: Path | str | None = None

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.blocking and not o.success]


def _short(value: Any) -> str:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalar -> 99.0, not "np.float64(99.0)"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _OBSERVED_MAX_CHARS:
        text = text[: _OBSERVED_MAX_CHARS - 3] + "..."
    return text


def _build_expectations(suite: dict[str, Any]) -> list[Any]:
    """GX Expectation objects for the suite's entries, in order. Raises ValueError naming any
    unknown type or rejected kwargs (GX's own `ExpectationSuite(expectations=[...])` only logs
    and drops an invalid entry)."""
    import great_expectations.exceptions as gx_exceptions
    from great_expectations.expectations.registry import get_expectation_impl

    built = []
    for i, entry in enumerate(suite.get("expectations") or []):
        etype = entry.get("type") or entry.get("expectation_type")
        if not etype:
            raise ValueError(f"suite {suite.get('name')!r}: expectation #{i} has no 'type'")
        try:
            impl = get_expectation_impl(etype)
        except gx_exceptions.ExpectationNotFoundError as e:
            raise ValueError(
                f"suite {suite.get('name')!r}: unknown expectation type {etype!r}"
            ) from e
        blocking = (entry.get("meta") or {}).get("blocking", False)
        if not isinstance(blocking, bool):
            raise ValueError(
                f"suite {suite.get('name')!r}: {etype!r} meta.blocking must be true or false, "
                f"not {blocking!r}"
            )
        try:
            kwargs = copy.deepcopy(entry.get("kwargs") or {})
            meta = copy.deepcopy(entry.get("meta") or {})
            built.append(impl(**kwargs, meta=meta))
        except Exception as e:  # pydantic ValidationError / GX config errors
            raise ValueError(
                f"suite {suite.get('name')!r}: invalid kwargs for {etype!r}: {e}"
            ) from e
    if not built:
        raise ValueError(f"suite {suite.get('name')!r} has no expectations to validate")
    return built


def _is_cached(df: DataFrame) -> bool:
    try:
        return bool(df.storageLevel.useMemory or df.storageLevel.useDisk)
    except Exception:  # e.g. a client that cannot answer: assume not, and unpersist after
        return False


def _new_context(docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Our own config rather than the bare `mode="ephemeral"` default: that default adds a
    # "local_site" Data Docs site in a fresh temp dir, which UpdateDataDocsAction would also build.
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = copy.deepcopy(defaults.stores)
    if docs_dir is not None:
        # The site's index builder deletes every validation page whose result is not in the
        # context's validation results store; an in-memory store would keep only this call's
        # run. Keeping the results as JSON beside the site keeps earlier runs listed.
        stores[defaults.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir / RESULTS_SUBDIR),
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name=DOCS_SITE_NAME,
            site_config={
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _error_message(exception_info: Any) -> str | None:
    """GX's exception_info has two shapes: one flat {"raised_exception", "exception_message",
    ...} dict, or (when a metric failed to resolve, e.g. a missing column) a dict of metric id
    -> ExceptionInfo. The first message raised, or None."""
    if not exception_info:
        return None
    if "raised_exception" in exception_info:
        infos = [exception_info]
    else:
        infos = [v for v in exception_info.values() if isinstance(v, dict)]
    for info in infos:
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "exception in GX")
    return None


def _observed(result: Any) -> str | None:
    error = _error_message(result.exception_info)
    if error is not None:
        first_line = next((line for line in error.splitlines() if line.strip()), error)
        return _short(f"error: {first_line.strip()}")
    details = result.result or {}
    if "observed_value" in details:
        return _short(details["observed_value"])
    return None


def _row_level_results(
    suite_name: str, row_level: Sequence[RowRuleResult]
) -> tuple[list[Any], list[Any]]:
    """GX Expectations of the row-level rules, and their ExpectationValidationResults."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )

    expectations = _build_expectations(
        {
            "name": suite_name,
            "expectations": [
                {"type": r.type, "kwargs": r.kwargs, "meta": r.meta} for r in row_level
            ],
        }
    )
    results = [
        ExpectationValidationResult(
            success=r.success,
            expectation_config=expectation.configuration,
            result=r.gx_result(),
            exception_info={
                "raised_exception": False,
                "exception_message": None,
                "exception_traceback": None,
            },
        )
        for r, expectation in zip(row_level, expectations, strict=True)
    ]
    return expectations, results


def _render_docs(
    context: Any,
    gx_suite: Any,
    run_results: dict[Any, Any],
    row_level: Sequence[RowRuleResult],
    docs_dir: Path,
) -> None:
    """Add the row-level outcomes to the validation result (and their expectations to the
    suite, before the table-level ones, as in the suite files), store it, render the site and
    make it work offline."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    if row_level:
        expectations, results = _row_level_results(gx_suite.name, row_level)
        gx_suite.expectations = [*expectations, *gx_suite.expectations]
        gx_suite.save()
        for key, suite_result in run_results.items():
            suite_result.results = [*results, *suite_result.results]
            stats = calc_validation_statistics(suite_result.results)
            suite_result.success = stats.success
            suite_result.statistics = {
                "evaluated_expectations": stats.evaluated_expectations,
                "successful_expectations": stats.successful_expectations,
                "unsuccessful_expectations": stats.unsuccessful_expectations,
                "success_percent": stats.success_percent,
            }
            context.validation_results_store.set(key, suite_result)
    context.build_data_docs(
        site_names=[DOCS_SITE_NAME],
        resource_identifiers=[
            *run_results,
            ExpectationSuiteIdentifier(name=gx_suite.name),
        ],
    )
    datadocs.make_offline(docs_dir)


def validate_table_level(
    df: DataFrame,
    suite: dict[str, Any],
    docs_dir: Path | None,
    run_name: str,
    row_level: Sequence[RowRuleResult] = (),
) -> TableValidation:
    """Validate `df` against the (table-level) expectations of `suite` with GX.

    `suite` is a parsed GX 1.x suite file. Data Docs are rendered into `docs_dir` when it is
    given (created if missing; earlier runs already there stay listed in its index), with the
    `row_level` outcomes (evaluated by lakeloop) in the same validation result. GX runs when
    the suite has table-level expectations, or when there are row-level outcomes to render.
    """
    suite_name = suite.get("name")
    if not suite_name or not isinstance(suite_name, str):
        raise ValueError("suite has no 'name'")
    entries = list(suite.get("expectations") or [])
    if not entries and (docs_dir is None or not row_level):  # nothing for GX to run or show
        logger.info("GX table-level %s (run %s): no expectations, GX not run", suite_name, run_name)
        return TableValidation(suite_name=suite_name, success=True)
    expectations = _build_expectations(suite) if entries else []
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        docs_dir.mkdir(parents=True, exist_ok=True)
    context = _new_context(docs_dir)
    tag = uuid.uuid4().hex[:12]

    batch_definition = (
        context.data_sources.add_spark(name=DATA_SOURCE_NAME)
        .add_dataframe_asset(name=ASSET_NAME)
        .add_batch_definition_whole_dataframe(f"whole_dataframe_{tag}")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(
            name=suite_name, expectations=expectations, meta=copy.deepcopy(suite.get("meta"))
        )
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_{tag}", data=batch_definition, suite=gx_suite)
    )
    # No UpdateDataDocsAction: the site is rendered after the row-level outcomes are added.
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"checkpoint_{tag}",
            validation_definitions=[validation],
            actions=[],
            result_format={"result_format": "SUMMARY"},
        )
    )
    # GX's Spark engine calls df.persist() on the batch and never unpersists it; undo that
    # afterwards unless the caller had cached the DataFrame already.
    was_cached = _is_cached(df)
    try:
        result = checkpoint.run(
            batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name)
        )
    finally:
        if not was_cached:
            df.unpersist()

    by_id = {r.expectation_config.id: r for run in result.run_results.values() for r in run.results}
    outcomes: list[ExpectationOutcome] = []
    for entry, expectation in zip(entries, gx_suite.expectations, strict=True):
        res = by_id.get(expectation.id)
        if res is None:
            raise RuntimeError(f"GX returned no result for {entry.get('type')} ({expectation.id})")
        outcomes.append(
            ExpectationOutcome(
                type=expectation.expectation_type,
                kwargs=copy.deepcopy(entry.get("kwargs") or {}),
                success=bool(res.success),
                blocking=(entry.get("meta") or {}).get("blocking", False),
                observed=_observed(res),
            )
        )
        error = _error_message(res.exception_info)
        if error is not None:
            logger.warning(
                "%s: %s raised in GX: %s", suite_name, expectation.expectation_type, error
            )

    docs_index = None
    if docs_dir is not None:
        _render_docs(context, gx_suite, result.run_results, row_level, docs_dir)
        index = docs_dir / "index.html"
        docs_index = index if index.exists() else None
        if docs_index is None:
            logger.warning("GX Data Docs index was not written under %s", docs_dir)

    validation_result = TableValidation(
        suite_name=suite_name,
        success=all(o.success for o in outcomes),
        outcomes=outcomes,
        docs_index=docs_index,
    )
    failed = [o.type for o in outcomes if not o.success]
    logger.info(
        "GX table-level %s (run %s): %d/%d passed%s%s",
        suite_name,
        run_name,
        len(outcomes) - len(failed),
        len(outcomes),
        f"; failed: {', '.join(failed)}" if failed else "",
        f"; docs: {docs_index}" if docs_index else "",
    )
    return validation_result
