"""The tree's imports, read from the source: no cycle, and every arrow points down a layer.

Layers, lowest first: `config`'s settings, environment and exceptions; `tenants`; the `jobs`
engine; the workloads (`communications`, `reports`); `workflows`, which runs graphs of any
app's kinds, and `alerts`, which tells people through the workloads' channels; the composition
root (`config.urls`, the WSGI/ASGI entry points) and `demo` (the first run's sample data, made
through every app). Inside the engine: its foundation (models, kinds, errors…), then
`transport` (the only code that imports RQ), `selectors`, `services`, `runtime`, and its
interfaces (API, admin, commands, kinds of its own). In every app, models, selectors and
services never import the interfaces above them. Function-level imports count like any other.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "tenants", "jobs", "communications", "reports", "workflows", "alerts", "demo")
RQ_PACKAGES = ("rq", "django_rq")
INTERFACES = ("api", "admin", "management", "tasks", "tasks_backend", "urls", "apps")
ROOT_MODULES = ("config.urls", "config.api_urls", "config.wsgi", "config.asgi")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _sources()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports, as a dotted name (submodules resolved where they exist)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in MODULES else base


def _graph() -> dict[str, set[str]]:
    return {
        name: {target for target in _imports(name, path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


GRAPH = _graph()


def _rank(module: str) -> int:
    app = module.split(".")[0]
    if app == "config":
        return 5 if module in ROOT_MODULES else 0
    ranks = {"tenants": 1, "jobs": 2, "communications": 3, "reports": 3}
    return {**ranks, "workflows": 4, "alerts": 4, "demo": 5}[app]


ENGINE_LAYERS = ("transport", "selectors", "services", "runtime")


def _engine_rank(module: str) -> int:
    """0 foundation, 1 transport, 2 selectors, 3 services, 4 runtime, 5 interfaces."""
    part = module.split(".")[1] if module.count(".") else ""
    if part in ENGINE_LAYERS:
        return ENGINE_LAYERS.index(part) + 1
    return 5 if part in INTERFACES else 0


def _role(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_the_tree_is_read():
    assert {"jobs.transport.queueing", "jobs.services.jobs", "communications.services.events"} <= (
        set(MODULES)
    )
    assert "jobs.transport.queueing" in GRAPH["jobs.services.jobs"]


def test_no_import_cycle():
    assert _cycles() == []


def test_apps_import_only_their_own_layer_and_those_below():
    upward = [
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if _rank(target) > _rank(source)
    ]
    assert upward == []


def test_inside_the_engine_imports_point_down():
    upward = [
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if source.startswith("jobs.")
        for target in targets
        if target.startswith("jobs.") and _engine_rank(target) > _engine_rank(source)
    ]
    assert upward == []


@pytest.mark.parametrize("app", APPS)
def test_models_selectors_and_services_never_import_an_interface(app):
    lower = ("models", "selectors", "services")
    upward = [
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        if source.startswith(f"{app}.") and _role(source) in lower
        for target in targets
        if target.startswith(f"{app}.") and _role(target) in INTERFACES
    ]
    assert upward == []


def test_only_the_transport_package_imports_rq():
    importers = sorted(
        name
        for name, path in MODULES.items()
        if not name.startswith("jobs.transport")
        for target in _imports(name, path)
        if target.split(".")[0] in RQ_PACKAGES
    )
    assert importers == []
