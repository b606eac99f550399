"""The browsable API reference served at GET /api/v1/docs: one HTML page rendered on the server
from the same OpenAPI document as /api/v1/openapi.json (openapi.py), so the two cannot disagree.

It works offline and behind any firewall: no script, no font or stylesheet from elsewhere, no
viewer to download at install time; the CSS is inline. Schemas are shown as tables of fields
(`recipients[].to`), one row per property, with its type, whether it is required, its bounds and
its description; the common error answers are resolved from components.responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

HERE = Path(__file__).parent
METHODS = ("get", "put", "post", "patch", "delete")
_BOUNDS = (
    ("minLength", "min length"), ("maxLength", "max length"), ("minimum", "≥"),
    ("maximum", "≤"), ("minItems", "min items"), ("maxItems", "max items"),
    ("maxProperties", "max keys"), ("pattern", "pattern"), ("format", "format"),
)  # fmt: skip


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    notes: str
    description: str


@dataclass(frozen=True)
class Operation:
    tag: str
    method: str
    path: str
    anchor: str
    summary: str
    description: str
    parameters: list[dict[str, Any]]
    body: list[Field] | None
    status: str
    answer: list[Field]
    errors: list[tuple[str, str]]
    query_key: bool


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" or (isinstance(kind, list) and "array" in kind):
        text = text.replace("array", f"array of {_type(schema.get('items', {}))}")
    return text


def _notes(schema: dict[str, Any]) -> str:
    notes = [f"{label} {schema[key]}" for key, label in _BOUNDS if key in schema]
    if "enum" in schema:
        notes.append("one of " + ", ".join(str(v) for v in schema["enum"]))
    for example in schema.get("examples", ())[:1]:
        notes.append(f"e.g. {example}")
    return "; ".join(notes)


def fields(schema: dict[str, Any], prefix: str = "") -> list[Field]:
    """The schema's properties as rows, nested objects and arrays of objects flattened with
    dotted names (`a.b`, `a[].b`, `a.{key}` for a map's values)."""
    rows: list[Field] = []
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        full = f"{prefix}{name}"
        rows.append(Field(full, _type(sub), name in required, _notes(sub),
                          str(sub.get("description", ""))))  # fmt: skip
        rows.extend(_nested(sub, full))
    return rows


def _nested(schema: dict[str, Any], name: str) -> list[Field]:
    if "properties" in schema:
        return fields(schema, f"{name}.")
    items = schema.get("items")
    if isinstance(items, dict) and "properties" in items:
        return fields(items, f"{name}[].")
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        row = Field(f"{name}.{{key}}", _type(values), False, _notes(values),
                    str(values.get("description", "")))  # fmt: skip
        return [row, *_nested(values, row.name)]
    return []


def _resolve(doc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return item
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return dict(node)


def _schema_of(content_holder: dict[str, Any]) -> dict[str, Any]:
    content = content_holder.get("content", {}).get("application/json", {})
    return dict(content.get("schema", {}))


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every path and method of the document, in its order."""
    out: list[Operation] = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses = op.get("responses", {})
            status = next(s for s in responses if s.startswith("2"))
            errors = [(s, str(_resolve(doc, r).get("description", "")))
                      for s, r in responses.items() if s != status]  # fmt: skip
            body = op.get("requestBody")
            out.append(Operation(
                tag=str((op.get("tags") or ["other"])[0]), method=method.upper(), path=path,
                anchor=str(op.get("operationId") or f"{method}-{path}"),
                summary=str(op.get("summary", "")), description=str(op.get("description", "")),
                parameters=list(op.get("parameters", ())),
                body=fields(_schema_of(body)) if body is not None else None,
                status=status, answer=fields(_schema_of(responses[status])), errors=errors,
                query_key=any("query_key" in s for s in op.get("security", ())),
            ))  # fmt: skip
    return out


def _code(text: str) -> Markup:
    """Escape, then show `quoted` words as code (the descriptions' only markup)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["code"] = _code
_ENV.filters["notes"] = _notes
_ENV.filters["type"] = _type


def render(doc: dict[str, Any]) -> str:
    ops = operations(doc)
    tags: dict[str, list[Operation]] = {}
    for op in ops:
        tags.setdefault(op.tag, []).append(op)
    codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    return _ENV.get_template("reference.html").render(
        info=doc["info"], tags=tags, count=len(ops), error_codes=codes.get("enum", []),
        error_fields=fields(doc["components"]["schemas"]["Error"]),
    )  # fmt: skip
