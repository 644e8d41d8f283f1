"""A submitted graph, checked whole: names, kinds, payloads, edges, conditions, references, cycles.

Every problem is a DRF ValidationError naming the step and its field:
`{"steps": {"welcome": {"payload": {"template": ["…"]}}}}`. A payload value holding a
`{{ template }}` is rendered when its step runs, so its serializer checks it then, not here.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from rest_framework import serializers

from jobs.errors import UnknownKind
from jobs.kinds import JobKind, get_kind, public_kinds
from workflows.conditions import check_conditions
from workflows.models import Edge, Join

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
REFERENCE = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
TEMPLATE_MARK = "{{"
MAX_STEPS = 5000
MAX_DELAY = 90 * 86400


@dataclass
class StepSpec:
    name: str
    kind: str
    payload: dict[str, Any]
    delay: int = 0
    needs: list[dict[str, str]] = field(default_factory=list)
    join: str = Join.ALL
    condition: list[dict[str, Any]] = field(default_factory=list)

    @property
    def parents(self) -> list[str]:
        return [need["step"] for need in self.needs]


STEP_FIELDS = frozenset({"name", "kind", "payload", "delay", "needs", "join", "condition"})


def _read_step(raw: dict[str, Any]) -> tuple[StepSpec | None, dict[str, list[str]]]:
    """One step's fields checked by type (a thousand steps are read in a blink)."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(raw) - STEP_FIELDS)
    if unknown:
        errors[unknown[0]] = [f"Not a field of a step; the fields are {', '.join(STEP_FIELDS)}."]
    name, kind = raw.get("name"), raw.get("kind")
    if not isinstance(name, str) or not NAME.match(name):
        errors["name"] = ["Letters, digits and _, not starting with a digit (at most 64)."]
    if not isinstance(kind, str) or not kind or len(kind) > 100:
        errors["kind"] = ["Give a registered kind, e.g. workflows.send_message."]
    delay = raw.get("delay", 0)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY:
        errors["delay"] = [f"Seconds, a whole number from 0 to {MAX_DELAY}."]
    needs = raw.get("needs", [])
    if not isinstance(needs, list) or len(needs) > MAX_STEPS:
        errors["needs"] = ["A list of parent step names or {step, when} objects."]
    join = raw.get("join", Join.ALL)
    if join not in Join.values:
        errors["join"] = [f"Choose one of {', '.join(Join.values)}."]
    if errors:
        return None, errors
    spec = StepSpec(
        name=str(name),
        kind=str(kind),
        payload=raw.get("payload", {}),
        delay=delay,
        needs=needs,
        join=join,
        condition=raw.get("condition", []),
    )
    return spec, {}


def has_template(value: Any) -> bool:
    if isinstance(value, str):
        return TEMPLATE_MARK in value
    if isinstance(value, dict):
        return any(has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(has_template(item) for item in value)
    return False


def references(value: Any) -> set[str]:
    """The step names `value` (a payload or a condition) reads as `steps.<name>`."""
    if isinstance(value, str):
        return set(REFERENCE.findall(value))
    if isinstance(value, dict):
        return set().union(*(references(item) for item in value.values()), set())
    if isinstance(value, list):
        return set().union(*(references(item) for item in value), set())
    return set()


def check_graph(steps: Any) -> list[StepSpec]:
    """The steps of a graph in submitted order, or a ValidationError naming each step at fault."""
    if not isinstance(steps, list) or not steps:
        raise serializers.ValidationError({"steps": ["Give a non-empty list of steps."]})
    if len(steps) > MAX_STEPS:
        raise serializers.ValidationError({"steps": [f"At most {MAX_STEPS} steps."]})
    specs, errors = _read_steps(steps)
    names = {spec.name for spec in specs}
    for spec in specs:
        if problems := _check_edges(spec, names):
            errors.setdefault(spec.name, {}).update(problems)
    if errors:
        raise serializers.ValidationError({"steps": errors})
    ancestors = _ancestors(specs)
    for spec in specs:
        if problems := _check_step(spec, ancestors[spec.name]):
            errors.setdefault(spec.name, {}).update(problems)
    if errors:
        raise serializers.ValidationError({"steps": errors})
    return specs


def _read_steps(steps: list[Any]) -> tuple[list[StepSpec], dict[str, Any]]:
    specs: list[StepSpec] = []
    errors: dict[str, Any] = {}
    seen: set[str] = set()
    for index, raw in enumerate(steps):
        if not isinstance(raw, dict):
            errors[str(index)] = ["Each step is an object."]
            continue
        label = str(raw.get("name") or index)
        spec, problems = _read_step(raw)
        if spec is None:
            errors[label] = problems
        elif spec.name in seen:
            errors[label] = {"name": ["Another step has this name."]}
        else:
            seen.add(spec.name)
            specs.append(spec)
    return specs, errors


def _check_edges(spec: StepSpec, names: set[str]) -> dict[str, Any]:
    needs: list[dict[str, str]] = []
    for need in spec.needs:
        if isinstance(need, str):
            need = {"step": need, "when": Edge.ON_SUCCESS}
        if not isinstance(need, dict) or set(need) - {"step", "when"} or "step" not in need:
            return {"needs": ['Each need is a step name or {"step": …, "when": …}.']}
        when = need.get("when", Edge.ON_SUCCESS)
        if when not in Edge.values:
            return {"needs": [f"when is one of {', '.join(Edge.values)}, not {when!r}."]}
        if need["step"] not in names:
            return {"needs": [f"There is no step {need['step']!r}."]}
        if need["step"] == spec.name:
            return {"needs": ["A step cannot wait for itself."]}
        if any(known["step"] == need["step"] for known in needs):
            return {"needs": [f"{need['step']!r} is named twice."]}
        needs.append({"step": need["step"], "when": when})
    spec.needs = needs
    return {}


def _ancestors(specs: list[StepSpec]) -> dict[str, set[str]]:
    graph = {spec.name: set(spec.parents) for spec in specs}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        cycle = " → ".join(error.args[1])
        raise serializers.ValidationError(
            {"steps": {error.args[1][0]: {"needs": [f"These steps wait for each other: {cycle}."]}}}
        ) from None
    found: dict[str, set[str]] = {}
    for name in order:
        found[name] = set(graph[name]).union(*(found[parent] for parent in graph[name]), set())
    return found


def offered_kind(name: str) -> JobKind:
    """The kind `name` if tenants may start it (a public kind); else UnknownKind."""
    kind = get_kind(name)
    if kind not in public_kinds():
        raise UnknownKind(f"{name!r} is internal housekeeping: a workflow cannot run it.")
    return kind


def _check_step(spec: StepSpec, ancestors: set[str]) -> dict[str, Any]:
    try:
        kind = offered_kind(spec.kind)
    except UnknownKind as error:
        return {"kind": [str(error)]}
    problems: dict[str, Any] = {}
    if payload_errors := _payload_errors(kind.validate, spec.payload):
        problems["payload"] = payload_errors
    unknown = _unknown(references(spec.payload), ancestors)
    if unknown:
        problems.setdefault("payload", {})
        problems["payload"] = {**_as_dict(problems["payload"]), "steps": [unknown]}
    try:
        spec.condition = check_conditions(
            spec.condition, fields=lambda name: _unknown(references(name), ancestors)
        )
    except ValueError as error:
        problems["condition"] = [str(error)]
    return problems


def _as_dict(errors: Any) -> dict[str, Any]:
    return errors if isinstance(errors, dict) else {"payload": errors}


def _unknown(named: Iterable[str], ancestors: set[str]) -> str | None:
    outside = sorted(set(named) - ancestors)
    if not outside:
        return None
    return f"steps.{outside[0]} is not a step this one waits for (directly or not)."


def _payload_errors(validate: Any, payload: Any) -> Any:
    """The serializer's errors on fields without a template (those are checked when run)."""
    try:
        validate(payload)
    except serializers.ValidationError as error:
        detail = error.detail
        if not isinstance(detail, dict) or not isinstance(payload, dict):
            return detail
        kept = {
            key: value
            for key, value in detail.items()
            if key not in payload or not has_template(payload[key])
        }
        return kept or None
    return None
