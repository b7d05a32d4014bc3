"""The configuration reference (docs/configuration.md), generated from the config schema: one
row per key with its type, default, allowed values and description.

    python -m eeg2fmri.config_reference > docs/configuration.md

`tests/test_docs.py` fails when a key has no description or the page is out of date."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).with_name("config.schema.yaml")  # the workflow's schema, shipped


def keys(schema: dict[str, Any], node: dict[str, Any] | None = None, prefix: str = ""
         ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted key, its schema) for every key, depth first; `<name>` stands for a key of your
    choosing (a dataset, a model), `[]` for a list's entries."""
    node = schema if node is None else node
    if "$ref" in node:
        node = {**schema["$defs"][node["$ref"].split("/")[-1]],
                **{k: v for k, v in node.items() if k != "$ref"}}
    if prefix:
        yield prefix, node
    for name, sub in node.get("properties", {}).items():
        yield from keys(schema, sub, f"{prefix}.{name}" if prefix else name)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("properties"):
        yield from keys(schema, {**extra, "description": None}, f"{prefix}.<name>")
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        yield from keys(schema, {**items, "description": None}, f"{prefix}[]")


def undocumented(schema: dict[str, Any]) -> list[str]:
    """Keys with no description (a `<name>` or `[]` level is described by its parent)."""
    return [k for k, node in keys(schema)
            if not k.endswith(("<name>", "[]")) and not node.get("description")]


def _type(node: dict[str, Any]) -> str:
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"])
    kind = node.get("type", "object" if "properties" in node else "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(node.get("items"), dict) and node["items"].get("type"):
        kind = f"list of {node['items']['type']}"
    return kind


def _allowed(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append(" \\| ".join(f"`{v}`" for v in node["enum"]))
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<"), ("multipleOf", "multiple of")):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    return ", ".join(parts)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(schema: dict[str, Any]) -> str:
    lines = ["# Configuration reference", "",
             "Every key of `config.yaml`, generated from `workflow/schemas/config.schema.yaml` "
             "(`python -m eeg2fmri.config_reference > docs/configuration.md`; a test keeps this "
             "page equal to the schema). The workflow checks the config against the schema at "
             "start-up and fills in the defaults; an unknown key or a bad value stops the run "
             "with one line naming the key. `<name>` is a name of your choosing (a dataset, a "
             "model), `[]` an entry of a list.", ""]
    sections: dict[str, list[str]] = {"top level": []}
    nested = {k.split(".")[0].split("[")[0] for k, _ in keys(schema) if "." in k or "[" in k}
    for key, node in keys(schema):
        top = key.split(".")[0].split("[")[0]
        top = top if top in nested else "top level"
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        if len(default) > 60:
            default = "see `config.yaml`"
        row = (f"| `{key}` | {_cell(_type(node))} | {_cell(default)} | {_cell(_allowed(node))} "
               f"| {_cell(node.get('description') or '')} |")
        sections.setdefault(top, []).append(row)
    for top, rows in sections.items():
        lines += [f"## {top}" if top == "top level" else f"## `{top}`", "",
                  "| key | type | default | allowed | description |", "|:--|:--|:--|:--|:--|",
                  *rows, ""]
    return "\n".join(lines)


def load(path: Path = SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


if __name__ == "__main__":
    sys.stdout.write(markdown(load()))
