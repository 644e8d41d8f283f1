"""Payload values that refer to earlier steps: `{{ steps.lookup.result.email }}`, `{{ input.x }}`.

A value that is one reference and nothing else takes the referred value as it is (a number
stays a number, an object an object). Any other text holding `{{` is rendered by the sandboxed
message template engine (communications.template_engine): filters and tags of messages, no
access to anything but the data given.
"""

import re
from typing import Any

from communications.template_engine import build_context, render_part
from tenants.models import Tenant
from workflows.conditions import MISSING, lookup
from workflows.graph import has_template

WHOLE_REFERENCE = re.compile(r"^\{\{\s*((?:steps|input)(?:\.[A-Za-z0-9_]+)+)\s*\}\}$")


class RenderError(ValueError):
    """A payload value that could not be rendered; the message names the field."""


def render_payload(payload: Any, *, tenant: Tenant, data: dict[str, Any]) -> Any:
    """`payload` with every template in it replaced, from `data` (`steps` and `input`)."""
    if not has_template(payload):
        return payload
    context = build_context(tenant=tenant, variables=data)
    return _render(payload, "payload", tenant=tenant, data=data, context=context)


def _render(
    value: Any, where: str, *, tenant: Tenant, data: dict[str, Any], context: dict[str, Any]
) -> Any:
    if isinstance(value, dict):
        return {
            key: _render(item, f"{where}.{key}", tenant=tenant, data=data, context=context)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _render(item, f"{where}.{index}", tenant=tenant, data=data, context=context)
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    whole = WHOLE_REFERENCE.match(value)
    if whole:
        found = lookup(data, whole.group(1))
        if found is MISSING:
            raise RenderError(f"{where}: {whole.group(1)} is not defined.")
        return found
    try:
        return render_part(value, field=where, html=False, context=context)
    except Exception as error:  # the engine's errors name the field and the variable
        raise RenderError(str(error)) from None
