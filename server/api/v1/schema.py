"""A small schema language: each value's shape declared once, for checking requests and for the
OpenAPI 3.1 document (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect).

`check(value, where)` turns decoded JSON (or a query string value, with `from_text`) into the
Python value a handler gets, or raises InvalidInput naming the field, with the field's own error
code when it has one (a too-long recipient list is `too_many_numbers`, not `invalid_input`).
Objects refuse unknown fields: a misspelt option must not be ignored silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from simhive.server.core.errors import InvalidInput

_INT64 = 2**63 - 1


def _fail(where: str, what: str, code: str | None) -> InvalidInput:
    return InvalidInput(f"{where}: {what}", code=code, details={"field": where})


@dataclass(frozen=True)
class Schema:
    description: str = ""
    nullable: bool = False
    code: str | None = None  # the error code for a bad value, default invalid_input
    example: Any = None

    def check(self, value: Any, where: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise _fail(where, "must not be null", self.code)
        return self._check(value, where)

    def from_text(self, text: str, where: str) -> Any:
        """A query or path value: text, converted to this schema's type."""
        return self.check(text, where)

    def _check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def openapi(self) -> dict[str, Any]:
        out = self._openapi()
        if self.nullable:
            out["type"] = [out["type"], "null"]
        if self.description:
            out["description"] = self.description
        if self.example is not None:
            out["examples"] = [self.example]
        return out

    def _openapi(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Schema):
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None

    def _check(self, value: Any, where: str) -> str:
        if type(value) is not str:
            raise _fail(where, "must be a string", self.code)
        if len(value) < self.min_len:
            raise _fail(where, f"at least {self.min_len} character(s)", self.code)
        if self.max_len is not None and len(value) > self.max_len:
            raise _fail(where, f"at most {self.max_len} characters", self.code)
        if self.enum is not None and value not in self.enum:
            raise _fail(where, f"one of {', '.join(self.enum)}", self.code)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise _fail(where, "has the wrong form", self.code)
        if "\x00" in value:
            raise _fail(where, "must not contain NUL", self.code)
        return value

    def _openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.min_len:
            out["minLength"] = self.min_len
        if self.max_len is not None:
            out["maxLength"] = self.max_len
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern}$"
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.format is not None:
            out["format"] = self.format
        return out


@dataclass(frozen=True)
class Int(Schema):
    minimum: int | None = None
    maximum: int | None = None

    def _check(self, value: Any, where: str) -> int:
        if type(value) is not int or abs(value) > _INT64:
            raise _fail(where, "must be an integer", self.code)
        if self.minimum is not None and value < self.minimum:
            raise _fail(where, f"at least {self.minimum}", self.code)
        if self.maximum is not None and value > self.maximum:
            raise _fail(where, f"at most {self.maximum}", self.code)
        return value

    def from_text(self, text: str, where: str) -> Any:
        stripped = text.strip()
        digits = stripped[1:] if stripped[:1] == "-" else stripped
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise _fail(where, "must be an integer", self.code)
        return self.check(int(stripped), where)

    def _openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Bool(Schema):
    def _check(self, value: Any, where: str) -> bool:
        if type(value) is not bool:
            raise _fail(where, "must be true or false", self.code)
        return value

    def from_text(self, text: str, where: str) -> Any:
        folded = text.strip().lower()
        if folded in ("true", "1"):
            return True
        if folded in ("false", "0"):
            return False
        raise _fail(where, "must be true or false", self.code)

    def _openapi(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Arr(Schema):
    items: Schema = field(default_factory=Str)
    min_items: int = 0
    max_items: int | None = None
    size_code: str | None = None  # the error code for too many items

    def _check(self, value: Any, where: str) -> list[Any]:
        if type(value) is not list:
            raise _fail(where, "must be an array", self.code)
        if len(value) < self.min_items:
            raise _fail(where, f"at least {self.min_items} item(s)", self.code)
        if self.max_items is not None and len(value) > self.max_items:
            raise _fail(where, f"at most {self.max_items} items", self.size_code or self.code)
        items = self.items
        if type(items) is Str and items.pattern is None and items.enum is None:
            # The hot case (10,000 recipients): plain strings, checked without a call each.
            top = items.max_len if items.max_len is not None else 1 << 62
            for index, item in enumerate(value):
                if type(item) is not str or not items.min_len <= len(item) <= top:
                    items.check(item, f"{where}[{index}]")
            return value
        return [items.check(item, f"{where}[{index}]") for index, item in enumerate(value)]

    def _openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.items.openapi()}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out


@dataclass(frozen=True)
class Obj(Schema):
    fields: dict[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def _check(self, value: Any, where: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise _fail(where, "must be an object", self.code)
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            raise _fail(where, f"unknown field {str(unknown[0])[:40]!r}", self.code)
        out: dict[str, Any] = {}
        for key, schema in self.fields.items():
            if key in value:
                out[key] = schema.check(value[key], f"{where}.{key}" if where else key)
            elif key in self.required:
                raise _fail(f"{where}.{key}" if where else key, "is required", schema.code)
        return out

    def _openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {k: v.openapi() for k, v in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            out["required"] = list(self.required)
        return out


@dataclass(frozen=True)
class Any_(Schema):
    """Answers only: a value described in prose (e.g. free-form details)."""

    def _check(self, value: Any, where: str) -> Any:
        return value

    def _openapi(self) -> dict[str, Any]:
        return {"type": "object"}


@dataclass(frozen=True)
class Map(Schema):
    """An object of names chosen by the client (template variables) to values of one schema."""

    values: Schema = field(default_factory=Str)
    max_items: int = 50
    key_max_len: int = 40

    def _check(self, value: Any, where: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise _fail(where, "must be an object", self.code)
        if len(value) > self.max_items:
            raise _fail(where, f"at most {self.max_items} entries", self.code)
        out = {}
        for key, item in value.items():
            if not 0 < len(key) <= self.key_max_len:
                raise _fail(where, f"names of 1 to {self.key_max_len} characters", self.code)
            out[key] = self.values.check(item, f"{where}.{key}")
        return out

    def _openapi(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": self.values.openapi(),
            "maxProperties": self.max_items,
            "propertyNames": {"minLength": 1, "maxLength": self.key_max_len},
        }
