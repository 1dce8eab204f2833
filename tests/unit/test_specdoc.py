"""The spec's JSON Schema and reference docs (lakeloop.specdoc): generated from the models,
examples that validate, committed files that are current, and `lakeloop spec check`."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from typing import Literal

import pytest
import yaml
from pydantic import Field

from lakeloop import cli, spec, specdoc
from lakeloop.config import Strict
from tests.conftest import ROOT

jsonschema = pytest.importorskip("jsonschema")

HOUSES = ROOT / "conf/pipelines/houses.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    return specdoc.json_schema()


def _as_json(data):
    """YAML as an editor's language server sees it: dates are strings (YAML 1.2)."""
    return json.loads(json.dumps(data, default=lambda v: v.isoformat()))


def _schema_errors(schema: dict, data, section: str = "PipelineSpec") -> list:
    if section != "PipelineSpec":
        schema = {"$ref": f"#/$defs/{section}", "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(validator.iter_errors(_as_json(data)), key=lambda e: list(e.absolute_path))


# --- examples ------------------------------------------------------------------------------


def test_every_section_has_an_example_and_every_example_a_section():
    names = [m.__name__ for m, _ in specdoc.sections()]
    assert names[:4] == ["PipelineSpec", "Sources", "FileSource", "Column"]
    missing = [n for n in names if n not in specdoc.EXAMPLES]
    stale = sorted(set(specdoc.EXAMPLES) - set(names))
    assert not missing, f"add an example for {missing} to EXAMPLES in src/lakeloop/specdoc.py"
    assert not stale, f"EXAMPLES has {stale}, which are no longer models of the spec"


@pytest.mark.parametrize("section", sorted(specdoc.EXAMPLES))
def test_example_validates_against_its_model_and_the_schema(section, schema):
    model = getattr(spec, section, None)
    assert model is not None, f"EXAMPLES[{section!r}]: lakeloop.spec has no model {section}"
    data = yaml.safe_load(specdoc.EXAMPLES[section])
    model.model_validate(data)  # a pydantic ValidationError fails the test, naming the key
    errors = _schema_errors(schema, data, section)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_a_broken_example_fails_its_model():
    """The example check can fail: an example with a wrong value does not validate."""
    data = yaml.safe_load(specdoc.EXAMPLES["OutlierRule"]) | {"action": "erase"}
    with pytest.raises(ValueError, match="action"):
        spec.OutlierRule.model_validate(data)


# --- the committed files -------------------------------------------------------------------


def test_committed_schema_is_current():
    committed = (ROOT / specdoc.SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == specdoc.schema_text(), (
        f"{specdoc.SCHEMA_FILE} is stale: run `lakeloop spec schema > {specdoc.SCHEMA_FILE}`"
    )


def test_committed_docs_are_current():
    committed = (ROOT / specdoc.DOCS_FILE).read_text(encoding="utf-8")
    assert committed == specdoc.markdown(), (
        f"{specdoc.DOCS_FILE} is stale: run `lakeloop spec docs > {specdoc.DOCS_FILE}`"
    )


def test_output_is_the_same_in_another_process_and_ends_with_a_newline():
    """Another interpreter with another hash seed (set and dict order) writes the same bytes."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "LAKELOOP_LOG_LEVEL": "WARNING"}
    for action, text in (("schema", specdoc.schema_text()), ("docs", specdoc.markdown())):
        run = subprocess.run(
            [sys.executable, "-m", "lakeloop.specdoc", action],
            capture_output=True,
            env=env,
            check=True,
        )
        assert run.stdout.decode("utf-8") == text
        assert text.endswith("\n") and not text.endswith("\n\n")


# --- the JSON Schema -----------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema_with_keys_as_written(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "lakeloop pipeline spec"
    assert list(schema)[:3] == ["$schema", "title", "description"]
    assert list(schema["$defs"]) == sorted(schema["$defs"])
    files = schema["$defs"]["FileSource"]
    assert "schema" in files["properties"] and "columns" not in files["properties"]
    assert "schema" in files["required"]
    assert files["additionalProperties"] is False


# What draft-07 knows (the VS Code YAML extension validates with draft-07 semantics) plus
# `$defs`, which `$ref` reaches as a plain JSON pointer there.
DRAFT7_KEYWORDS = {
    "$schema", "$ref", "$defs", "title", "description", "default", "type", "enum", "const",
    "properties", "additionalProperties", "required", "items", "anyOf", "oneOf", "allOf",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
    "minLength", "maxLength", "minProperties", "maxProperties", "pattern", "format",
    "examples", "uniqueItems", "propertyNames", "patternProperties", "not",
}  # fmt: skip


def _keywords(node) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_keywords(n) for n in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties"):
            found |= set().union(*(_keywords(v) for v in value.values())) if value else set()
        elif key not in ("default", "enum", "const", "examples", "required"):
            found |= _keywords(value)
    return found


def test_schema_uses_only_keywords_editors_know(schema):
    """A 2019-09/2020-12-only keyword (prefixItems from a tuple, unevaluatedProperties...)
    would be silently ignored by the YAML language server."""
    assert _keywords(schema) - DRAFT7_KEYWORDS == set()
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    jsonschema.Draft7Validator.check_schema(draft7)
    assert not list(jsonschema.Draft7Validator(draft7).iter_errors(_as_json(_houses())))
    broken = _edit(_houses(), ["sources", "files", 0, "format"], "xml")
    assert [e.message for e in jsonschema.Draft7Validator(draft7).iter_errors(broken)] == [
        "'xml' is not one of ['csv', 'json']"
    ]


def test_schema_carries_docstrings_descriptions_and_comments(schema):
    defs = schema["$defs"]
    assert defs["Column"]["description"].startswith("A column of a source schema.")
    assert defs["FileSource"]["properties"]["table"]["description"].startswith("key in `tables`")
    # a `#` comment above the field in spec.py
    assert "does not answer" in defs["KafkaSource"]["properties"]["broker_timeout_s"]["description"]
    assert "IANA" in schema["properties"]["timezone"]["description"]
    # a `#` comment beside it
    props = defs["FeaturesSpec"]["properties"]
    assert props["timestamp"]["description"] == "entity event time -> feature_ts"


# The repository's specs and the ones `lakeloop init` writes into a new project.
SPECS = sorted(
    [*ROOT.glob("conf/pipelines/*.yaml"), *ROOT.glob("src/lakeloop/resources/**/pipelines/*.yaml")]
)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_project_specs_validate_against_the_schema(schema, path):
    errors = _schema_errors(schema, yaml.safe_load(path.read_text()))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_houses_is_among_the_specs_checked():
    assert HOUSES in SPECS


def _houses() -> dict:
    return yaml.safe_load(HOUSES.read_text())


def _edit(data: dict, path: list, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        (["sources", "files", 0, "fromat"], "csv", ["sources", "files", 0], "'fromat' was unexp"),
        (["sources", "files", 0, "format"], "xml", ["sources", "files", 0, "format"], "'xml' is"),
        (["model", "estimator", "type"], "xgboost", ["model", "estimator", "type"], "'xgboost'"),
        (["model", "tuning", "folds"], 1, ["model", "tuning", "folds"], "less than the minimum"),
        (["features", "aggregates", 0, "window_days"], "90d", ["features"], "'90d'"),
        (["unknown_section"], {}, [], "'unknown_section' was unexpected"),
    ],
)
def test_a_broken_spec_fails_the_schema(schema, path, value, where, message):
    errors = _schema_errors(schema, _edit(_houses(), path, value))
    assert errors, f"{path} = {value!r} passed the schema"
    best = jsonschema.exceptions.best_match(errors)  # through anyOf (optional sections)
    assert list(best.absolute_path)[: len(where)] == where
    assert message in best.message


def test_a_missing_required_key_fails_the_schema(schema):
    data = _houses()
    del data["sources"]["kafka"][0]["topic"]
    errors = _schema_errors(schema, data)
    assert [e.message for e in errors] == ["'topic' is a required property"]


# --- the Markdown --------------------------------------------------------------------------


def test_markdown_has_a_section_per_model_in_spec_order():
    md = specdoc.markdown()
    heads = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["Contents"] + [m.__name__ for m, _ in specdoc.sections()]
    assert md.index("## FileSource") < md.index("## Column") < md.index("## KafkaSource")
    assert specdoc.MODELINE in md


def test_markdown_rows_give_type_required_default_and_allowed_values():
    md = specdoc.markdown()
    rows = {line.split(" | ")[0] for line in md.splitlines() if line.startswith("| `")}
    assert "| `schema`" in rows  # the alias, as written
    assert "| `format` | one of `csv`, `json` | yes |  |  |" in md
    assert "| `nullable` | boolean | no | `true` |  |" in md
    assert (
        "| `max_offsets_per_trigger` | integer or null | no | `null` | >= 1 |" in md
    )  # bounds from the schema
    assert "conf/pipelines/&lt;name>.yaml" in md  # not swallowed as an HTML tag
    assert "```yaml\nname: listings_csv\n" in md  # FileSource's example


class _Demo(Strict):
    """Demo: a model to read comments from.

    name: looks like a field but is docstring text."""

    # above one
    # above two
    a: int = 1  # beside a
    b: Literal["x", "y"] | None = None
    c: list[str] = Field(
        default_factory=list,  # beside c, inside the call
        description="described",
    )
    name: str = "n"


def test_field_comments_come_from_above_and_beside_not_from_the_docstring():
    assert specdoc.field_comments(_Demo) == {
        "a": "above one above two beside a",
        "c": "beside c, inside the call",
    }
    fields = _Demo.model_fields
    assert specdoc._description(_Demo, "c", fields["c"]) == "described"  # description wins


@pytest.mark.parametrize(
    ("annotation", "text"),
    [
        (str | list[str], "string or (list of string)"),
        (Literal["s", "ms"] | None, "(one of `s`, `ms`) or null"),
        (dict[str, list[Literal["trim"]]], "map of name to (list of (one of `trim`))"),
        (dt.date | None, "date (YYYY-MM-DD) or null"),
        (list[spec.Column], "list of [Column](#column)"),
    ],
)
def test_type_text(annotation, text):
    assert specdoc.type_text(annotation) == text


# --- the command line ----------------------------------------------------------------------


def test_cli_schema_and_docs_print_the_generated_text(capsys):
    assert specdoc.cli(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == specdoc.json_schema()
    assert cli.main(["spec", "docs"]) == 0
    assert capsys.readouterr().out == specdoc.markdown()


def _check(tmp_path, *paths: str) -> int:
    return cli.main(
        ["spec", "check", *paths, "--env", "test", "--set", f"lakehouse_root={tmp_path}/lh"]
    )


def test_cli_check_passes_a_good_spec(tmp_path, capsys):
    assert _check(tmp_path, str(HOUSES), "houses") == 0
    assert capsys.readouterr().out == f"OK   {HOUSES}\nOK   houses\n"


def test_cli_check_fails_a_broken_spec_with_the_key_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_edit(_houses(), ["sources", "files", 0, "fromat"], "csv")))
    assert _check(tmp_path, str(HOUSES), str(bad), str(tmp_path / "missing.yaml")) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"OK   {HOUSES}",
        f"FAIL {bad}",
        f"FAIL {tmp_path / 'missing.yaml'}",
    ]
    assert "key sources.files.0.fromat: unknown key" in err
    assert "missing.yaml does not exist" in err
    assert "Traceback" not in err


def test_cli_check_fails_a_reference_the_schema_cannot_see(tmp_path, capsys, schema):
    """Structure is the schema's, references are lakeloop's: `spec check` catches both."""
    data = _edit(_houses(), ["label", "table"], "no_such_table")
    assert not _schema_errors(schema, data)
    bad = tmp_path / "ref.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert _check(tmp_path, str(bad)) == 2
    assert "label.table: 'no_such_table' is not a key of `tables`" in capsys.readouterr().err
