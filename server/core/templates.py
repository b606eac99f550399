"""Message templates: texts with `{variable}` placeholders, filled per recipient at send time.

A placeholder is `{name}` with a name of letters, digits and `_` (not starting with a digit, up
to 40 characters); every other brace is text. A send whose variables leave a placeholder without
a value is refused for that recipient with `template_mismatch` (Onfon's 024): a half-filled text
such as "Dear {name}" must never reach a phone. Variables a template does not use are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simhive.server.core import limits
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.keys import Caller
from simhive.server.core.native_models import PLACEHOLDER, Template
from simhive.server.store.base import Store

MAX_VARIABLE_CHARS = 1000


def render(body: str, values: Mapping[str, str]) -> str:
    """`body` with every placeholder filled; InvalidInput(template_mismatch) naming the missing."""
    missing = [name for name in dict.fromkeys(PLACEHOLDER.findall(body)) if name not in values]
    if missing:
        raise InvalidInput(
            f"No value for {', '.join('{' + m + '}' for m in missing)}",
            code="template_mismatch",
            details={"missing": missing},
        )
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], body)


def check_variables(values: Mapping[str, object], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(value, str) or len(value) > MAX_VARIABLE_CHARS:
            raise InvalidInput(
                f"{where}.{name[:40]}: a string of at most {MAX_VARIABLE_CHARS} characters",
                details={"field": f"{where}.{name[:40]}"},
            )
        out[name] = value
    return out


def _check(name: str, body: str) -> tuple[str, str]:
    name = name.strip()
    if not name or len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(
            f"Invalid template name: 1 to {limits.MAX_TITLE_CHARS} characters",
            details={"field": "name"},
        )
    if not body or len(body) > limits.MAX_BODY_CHARS:
        raise InvalidInput(
            f"Invalid template body: 1 to {limits.MAX_BODY_CHARS} characters",
            details={"field": "body"},
        )
    return name, body


class Templates:
    """Template use cases; writing needs `send`, reading `read`."""

    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def create(self, caller: Caller, name: str, body: str) -> Template:
        caller.require("send")
        name, body = _check(name, body)
        return await self.store.create_template(caller.account.id, name, body, self.clock())

    async def list(self, caller: Caller) -> list[Template]:
        caller.require("read")
        return await self.store.list_templates(caller.account.id)

    async def get(self, caller: Caller, template_id: int) -> Template:
        caller.require("read")
        return await self._get(caller, template_id)

    async def _get(self, caller: Caller, template_id: int) -> Template:
        found = await self.store.template_by_id(caller.account.id, template_id)
        if found is None:
            raise NotFound("Template not found")
        return found

    async def for_send(self, caller: Caller, template_id: int) -> Template:
        """The template a send names (the send's own scope check covers it)."""
        return await self._get(caller, template_id)

    async def update(
        self, caller: Caller, template_id: int, name: str | None, body: str | None
    ) -> Template:
        caller.require("send")
        current = await self._get(caller, template_id)
        name, body = _check(name if name is not None else current.name,
                            body if body is not None else current.body)  # fmt: skip
        return await self.store.update_template(
            caller.account.id, template_id, name, body, self.clock()
        )

    async def delete(self, caller: Caller, template_id: int) -> None:
        caller.require("send")
        await self._get(caller, template_id)
        await self.store.delete_template(caller.account.id, template_id)
