"""The pipeline spec's reference, generated from the pydantic models in `lakeloop.spec`.

`json_schema()` is the JSON Schema (draft 2020-12) that editors use to complete and check a spec
(`lakeloop spec schema > docs/spec.schema.json`); `markdown()` is `docs/spec.md`, one section per
model in spec order with every key's type, default and description, and an example from
`EXAMPLES` (`lakeloop spec docs > docs/spec.md`). Both are built from the models at run time, so
regenerating picks up every change to the spec. Descriptions come from the class docstrings, the
fields' `description`, and otherwise the `#` comments written beside or above a field in spec.py.

`lakeloop spec check PATH...` loads each spec with every rule lakeloop applies (the schema checks
the structure only: references between keys, identifiers and paths are checked by lakeloop).
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import json
import logging
import re
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from lakeloop import spec as spec_module
from lakeloop.config import ConfigError, add_config_arguments, load_config, parse_set_pairs
from lakeloop.spec import PipelineSpec, load_pipeline

log = logging.getLogger(__name__)

JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "lakeloop pipeline spec"
SCHEMA_FILE = "docs/spec.schema.json"
DOCS_FILE = "docs/spec.md"
# The first line of a spec under conf/pipelines/ for editors with the YAML language server.
MODELINE = "# yaml-language-server: $schema=../../docs/spec.schema.json"

# One example per section (the model's class name): the YAML a user writes at that place.
# tests/unit/test_specdoc.py validates each against its model and the JSON Schema, and fails
# when a section has none (add one here when spec.py grows a model).
EXAMPLES: dict[str, str] = {
    "PipelineSpec": """\
name: houses
description: House-sale price prediction from daily listings.
entity: listing
entity_key: listing_id
timezone: America/New_York
tables:
  bronze_listings: bronze.houses_listings
  run_log: ops.run_log
sources:
  files:
    - name: listings_csv
      table: bronze_listings
      glob: landing/houses/listings/date={date}/*.csv
      format: csv
      options: {header: true}
      schema:
        - {name: listing_id, type: string, nullable: false}
        - {name: listed_at, type: timestamp, nullable: false}
        - {name: sqft, type: int}
""",
    "Sources": """\
files:
  - name: listings_csv
    table: bronze_listings
    glob: landing/houses/listings/date={date}/*.csv
    format: csv
    schema:
      - {name: listing_id, type: string, nullable: false}
kafka:
  - name: sales
    table: bronze_sales
    dead_letter_table: dead_letter
    topic: houses.sales
    value_schema:
      - {name: sale_id, type: string, nullable: false}
      - {name: sold_at, type: timestamp, nullable: false}
""",
    "FileSource": """\
name: listings_csv
table: bronze_listings
glob: landing/houses/listings/date={date}/*.csv
format: csv
options: {header: true}
schema:
  - {name: listing_id, type: string, nullable: false}
  - {name: listed_at, type: timestamp, nullable: false}
  - {name: sqft, type: int}
  - {name: bathrooms, type: double}
""",
    "Column": """\
name: sold_at
type: timestamp
nullable: false
format: dd/MM/yyyy HH:mm   # or unit: ms (epoch milliseconds); neither: ISO-8601 text
min: 2000-01-01
""",
    "KafkaSource": """\
name: sales
table: bronze_sales
dead_letter_table: dead_letter
topic: houses.sales
partitions: 2
starting_offsets: earliest
fail_on_data_loss: true
event_time_field: sold_at
value_schema:
  - {name: sale_id, type: string, nullable: false}
  - {name: listing_id, type: string, nullable: false}
  - {name: sale_price, type: double, nullable: false}
  - {name: sold_at, type: timestamp, nullable: false}
""",
    "ValidationSpec": """\
source: bronze_listings
suite: houses/bronze_listings.json
silver: silver_listings
quarantine: quarantine_listings
cleaning:
  normalize: {zipcode: [trim]}
  dedup: {key: [listing_id], order_by: [listed_at, _source_position]}
""",
    "Projection": """\
rename: {square_feet: sqft}
columns: {price_per_sqft: "try_divide(price, sqft)"}
drop: [internal_note]
""",
    "CleaningSpec": """\
normalize: {zipcode: [trim], condition: [trim, lower]}
missing:
  sqft: {strategy: median}
  condition: {strategy: fill, value: good}
outliers:
  lot_sqft: {method: quantile, lower: 0.001, upper: 0.999, action: clip}
dedup: {key: [listing_id], order_by: [listed_at, _source_position]}
""",
    "MissingRule": """\
strategy: fill
value: good
""",
    "OutlierRule": """\
method: iqr
k: 3.0
action: flag
""",
    "Dedup": """\
key: [listing_id]
order_by: [listed_at, _source_position]
""",
    "FeaturesSpec": """\
source: silver_listings
table: features
timestamp: listed_at
columns:
  total_rooms: bedrooms + bathrooms
  age_years: year(listed_at) - year_built
aggregates:
  - {name: zip_sales_90d, source: silver_sales, key: zipcode, event_time: sold_at,
     expr: "count(*)", window_days: 90}
""",
    "WindowAggregate": """\
name: zip_median_price_per_sqft_90d
source: silver_sales
key: zipcode
event_time: sold_at
expr: percentile_approx(sale_price / sqft, 0.5)
window_days: 90
join: {table: silver_listings, key: listing_id, columns: [sqft], time: listed_at}
""",
    "AggregateJoin": """\
table: silver_listings
key: listing_id
columns: [sqft]
time: listed_at
order_by: [_ingest_date, _source_position]
""",
    "Lookup": """\
name: station_weather
table: silver_weather
key: station_id
time: observed_at
columns: {temp_c_at_event: temp_c, wind_kmh_at_event: wind_kmh}
tolerance: 2h
""",
    "LabelSpec": """\
source: silver_sales
table: training_set
column: sale_price
event_time: sold_at
id: sale_id
lookback_days: 120
""",
    "ModelSpec": """\
name: houses_price
task: regression
features:
  numeric: [sqft, bedrooms, bathrooms, age_years]
  categorical: [zipcode]
estimator:
  type: linear_regression
  grid: {regParam: [0.001, 0.01, 0.1]}
test_days: 10
promotion: {metric: rmse, thresholds: {r2: {min: 0.95}}}
predictions: predictions
""",
    "ModelFeatures": """\
numeric: [sqft, bedrooms, lot_sqft, zip_median_price_90d]
categorical: [zipcode, condition]
impute: {lot_sqft: median, zip_median_price_90d: median}
""",
    "EstimatorSpec": """\
type: random_forest
params: {numTrees: 50, seed: 7}
grid: {maxDepth: [4, 8]}
""",
    "TuningSpec": """\
folds: 3
metric: rmse
seed: 7
""",
    "PromotionSpec": """\
metric: rmse
margin: 0.01            # a challenger needs a 1% lower RMSE than the champion
baseline_margin: 0.05   # and 5% better than predicting the training mean/median
thresholds: {r2: {min: 0.95}, rmse: {max: 40000}}
""",
    "Bound": """\
min: 0.95
""",
    "MonitoringSpec": """\
features: [sqft, bedrooms, zipcode]   # default: every model feature
psi_threshold: 0.2
quality_days: 60    # prediction dates whose quality is recomputed as labels mature
trend_days: 30
""",
    "RetrainSpec": """\
drift: {psi: 0.25, runs: 2, of_last: 3}
quality: {metric: rmse, margin: 0.1, min_labels: 50}
new_labels: 5000
cooldown_days: 7
""",
    "ServingSpec": """\
challenger_fraction: 0.2     # entities (by a hash of the key) the challenger scores
log_table: online_predictions  # default; tables.online_predictions: predictions.<name>_online
""",
    "ScheduleSpec": """\
cron: "@daily"            # or "30 2 * * *", in the spec's time zone
start_date: 2026-01-01
owner: pricing-team
retries: 3
retry_delay_s: 60         # doubles per retry, up to max_retry_delay_s
timeout_min: 60
job_timeout_min: {train: 120}
training: {cron: "0 4 * * 0"}   # also retrain weekly, besides the retrain Asset
""",
    "TrainingSchedule": """\
cron: "0 4 * * 0"
""",
    "DriftRule": """\
features: [sqft]
psi: 0.25
runs: 2
of_last: 3
""",
    "QualityRule": """\
metric: rmse
margin: 0.1         # 10% worse than the champion's own test score
min_labels: 50
""",
}


# --- the models, in spec order ------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """`Annotated[X, ...]` -> X."""
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _models_in(tp: Any, path: str) -> Iterator[tuple[type[BaseModel], str]]:
    """The models an annotation holds, each with the path it is written at."""
    tp = _unwrap(tp)
    if _is_model(tp):
        yield tp, path
    elif _is_union(tp):
        for arg in get_args(tp):
            yield from _models_in(arg, path)
    elif get_origin(tp) in (list, tuple, set, frozenset):
        for arg in get_args(tp):
            yield from _models_in(arg, f"{path}[]")
    elif get_origin(tp) is dict:
        yield from _models_in(get_args(tp)[1], f"{path}.<name>")


def _key(name: str, field: FieldInfo) -> str:
    """The key as a user writes it (the alias, e.g. `schema` for FileSource.columns)."""
    return field.alias or name


def sections() -> list[tuple[type[BaseModel], list[str]]]:
    """Every model of the spec, depth first in field order from PipelineSpec, with the paths it
    is written at (a model used at two places, like Column, has two)."""
    order: list[type[BaseModel]] = []
    paths: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        if model in paths:
            if path not in paths[model]:
                paths[model].append(path)
            return
        order.append(model)
        paths[model] = [path]
        for name, field in model.model_fields.items():
            key = _key(name, field)
            for sub, sub_path in _models_in(field.annotation, f"{path}.{key}" if path else key):
                visit(sub, sub_path)

    visit(PipelineSpec, "")
    return [(m, paths[m]) for m in order]


# --- descriptions -------------------------------------------------------------------------


def _docstring(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


@functools.cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the `#` comments written above it (a block right before the field) and
    beside it in the class's source."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, the whole line is a comment)
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            whole = not lines[row - 1][:col].strip()
            comments[row] = (tok.string.lstrip("#").strip(), whole)
    cls_node = ast.parse(source).body[0]
    out: dict[str, str] = {}
    for node in getattr(cls_node, "body", []):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 1
        while row in comments and comments[row][1]:
            above.insert(0, comments[row][0])
            row -= 1
        beside = [
            comments[r][0]
            for r in range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if r in comments and not comments[r][1]
        ]
        text = " ".join(t for t in above + beside if t)
        if text and node.target.id in model.model_fields:
            out[node.target.id] = text
    return out


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    return field.description or field_comments(model).get(name, "")


# --- JSON Schema --------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12): keys as written (aliases), descriptions from the
    docstrings, field descriptions and comments, `additionalProperties: false` everywhere."""
    raw = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    by_name = {m.__name__: m for m, _ in sections()}
    for def_name, node in defs.items():
        if def_name in by_name:
            _describe_properties(by_name[def_name], node)
    _describe_properties(PipelineSpec, raw)
    out: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": TITLE,
        "description": _docstring(PipelineSpec) or inspect.cleandoc(spec_module.__doc__ or ""),
    }
    out.update((k, v) for k, v in raw.items() if k not in ("title", "description"))
    out["$defs"] = {k: defs[k] for k in sorted(defs)}
    return out


def _describe_properties(model: type[BaseModel], node: dict[str, Any]) -> None:
    props = node.get("properties", {})
    for name, field in model.model_fields.items():
        prop = props.get(_key(name, field))
        if prop is not None and "description" not in prop:
            text = _description(model, name, field)
            if text:
                prop["description"] = text


def schema_text() -> str:
    """`json_schema()` as the text of docs/spec.schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# --- Markdown -----------------------------------------------------------------------------


_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    Any: "any",
}


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def type_text(tp: Any) -> str:
    """A field's annotation in words, models linked to their sections."""
    tp = _unwrap(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if _is_model(tp):
        return f"[{tp.__name__}](#{_anchor(tp)})"
    if isinstance(tp, type) and tp.__name__ in _NAMED:
        return _NAMED[tp.__name__]
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if _is_union(tp):
        return " or ".join(_grouped(type_text(a)) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_grouped(type_text(args[0]) if args else 'any')}"
    if origin is dict:
        return f"map of name to {_grouped(type_text(args[1]) if len(args) == 2 else 'any')}"
    return getattr(tp, "__name__", str(tp))


_NAMED = {"date": "date (YYYY-MM-DD)", "datetime": "timestamp", "Path": "path"}


def _grouped(text: str) -> str:
    """`text` in parentheses when it is made of several words (`list of string or null` would
    be ambiguous)."""
    simple = text in _SCALARS.values() or text in _NAMED.values() or text.startswith("[")
    return text if simple else f"({text})"


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return f"`{json.dumps(to_jsonable_python(value), ensure_ascii=False)}`"


_CONSTRAINTS = {
    "minimum": ">= {}",
    "exclusiveMinimum": "> {}",
    "maximum": "<= {}",
    "exclusiveMaximum": "< {}",
    "minItems": "length >= {}",
    "maxItems": "length <= {}",
    "minLength": "length >= {}",
    "maxLength": "length <= {}",
    "minProperties": "length >= {}",
    "maxProperties": "length <= {}",
    "pattern": "matches `{}`",
}


def _constraints(prop: Any) -> list[str]:
    """Bounds found in a property's schema (through anyOf/items, not through $ref)."""
    found: list[str] = []
    if isinstance(prop, dict):
        for key, fmt in _CONSTRAINTS.items():
            if key in prop:
                found.append(fmt.format(prop[key]))
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in prop.get(key, []):
                found += _constraints(sub)
        found += _constraints(prop.get("items"))
    return found


def _prose(text: str) -> str:
    """Text from the code as Markdown: `<` outside code spans escaped (`conf/pipelines/<name>`
    would otherwise be an HTML tag and vanish); code spans as they are."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        p if p.startswith("`") else re.sub(r"<(?=[A-Za-z/!?])", "&lt;", p) for p in parts
    )


def _cell(text: str) -> str:
    return _prose(" ".join(text.split())).replace("|", "\\|")


def _section(model: type[BaseModel], paths: list[str], schema_node: dict[str, Any]) -> str:
    out = [f"## {model.__name__}", ""]
    where = ", ".join(f"`{p}`" for p in paths if p)
    out += [f"Where: {where or 'the top level of the spec file'}.", ""]
    doc = _docstring(model)
    if doc:
        out += [_prose(doc), ""]
    out += ["| key | type | required | default | description |", "|---|---|---|---|---|"]
    props = schema_node.get("properties", {})
    for name, field in model.model_fields.items():
        key = _key(name, field)
        desc = _description(model, name, field)
        bounds = _constraints(props.get(key))
        if bounds:
            desc = f"{desc} ({', '.join(dict.fromkeys(bounds))})" if desc else ", ".join(bounds)
        required = "yes" if field.is_required() else "no"
        row = [f"`{key}`", type_text(field.annotation), required, _default_text(field), desc]
        out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    example = EXAMPLES.get(model.__name__)
    out += ["", "Example:", ""]
    if example:
        out += ["```yaml", example.rstrip("\n"), "```"]
    else:
        out += ["(none yet: add one to `EXAMPLES` in src/lakeloop/specdoc.py)"]
    return "\n".join(out)


def markdown() -> str:
    """docs/spec.md: an introduction, contents, then one section per model in spec order."""
    schema = json_schema()
    secs = sections()
    intro = inspect.cleandoc(spec_module.__doc__ or "")
    out = [
        "# Pipeline spec reference",
        "",
        f"<!-- Generated from src/lakeloop/spec.py by `lakeloop spec docs > {DOCS_FILE}`; do not "
        "edit by hand. -->",
        "",
        _prose(intro),
        "",
        f"The JSON Schema `{SCHEMA_FILE}` (`lakeloop spec schema > {SCHEMA_FILE}`) lets an "
        "editor with the YAML language server complete and check a spec; the first line of "
        "`conf/pipelines/<name>.yaml` names it:",
        "",
        "```yaml",
        MODELINE,
        "```",
        "",
        "The schema checks the structure (keys, types, allowed values, bounds). `lakeloop spec "
        "check conf/pipelines/*.yaml` applies every rule lakeloop applies at load: references "
        "between keys (e.g. a source's `table` must be a key of `tables`), identifiers, time "
        "zones and paths under the lakehouse root.",
        "",
        "## Contents",
        "",
    ]
    for model, paths in secs:
        where = ", ".join(f"`{p}`" for p in paths if p) or "the top level"
        out.append(f"- [{model.__name__}](#{_anchor(model)}): {where}")
    for model, paths in secs:
        node = schema if model is PipelineSpec else schema["$defs"].get(model.__name__, {})
        out += ["", _section(model, paths, node)]
    return "\n".join(out).rstrip("\n") + "\n"


# --- command line -------------------------------------------------------------------------


def _write(text: str) -> None:
    """UTF-8 to stdout whatever the locale (the docs hold non-ASCII text)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `spec` subcommand's arguments (`lakeloop spec ...` and `python -m lakeloop.specdoc`)."""
    actions = p.add_subparsers(dest="spec_action", required=True, metavar="{schema,docs,check}")
    actions.add_parser(
        "schema", help=f"the spec's JSON Schema (draft 2020-12), e.g. > {SCHEMA_FILE}"
    )
    actions.add_parser("docs", help=f"the spec reference in Markdown, e.g. > {DOCS_FILE}")
    c = actions.add_parser("check", help="load spec files with every rule; exit 2 on any error")
    c.add_argument(
        "paths", nargs="+", metavar="PATH", help="spec files (or names under conf/pipelines)"
    )
    add_config_arguments(c)


def check(paths: list[str], env: str | None = None, overrides: list[str] | None = None) -> int:
    """Load each spec through `load_pipeline`: `OK path` or `FAIL path` on stdout, the error on
    stderr; 2 when any fails, else 0."""
    cfg = load_config(env, parse_set_pairs(overrides or []))
    failed = 0
    for path in paths:
        try:
            load_pipeline(cfg, path)
        except ConfigError as e:
            failed += 1
            _write(f"FAIL {path}\n")
            log.error("%s", e)
        except (OSError, UnicodeError) as e:
            failed += 1
            _write(f"FAIL {path}\n")
            log.error("pipeline spec %s: cannot be read: %s", path, e)
        else:
            _write(f"OK   {path}\n")
    return 2 if failed else 0


def run(args: argparse.Namespace) -> int:
    if args.spec_action == "schema":
        _write(schema_text())
        return 0
    if args.spec_action == "docs":
        _write(markdown())
        return 0
    return check(args.paths, args.env, args.set)


def cli(argv: list[str] | None = None) -> int:
    """`lakeloop spec schema | docs | check PATH...` on its own."""
    from lakeloop import logs

    logs.configure()
    parser = argparse.ArgumentParser(prog="lakeloop spec", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
