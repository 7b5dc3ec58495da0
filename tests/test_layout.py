"""The shape of the code: no import circles among the program's modules (imports inside
functions count too), each module importing only its own layer and those below, and the
pure modules importing no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daemon"
PURE = ("daemon.plan", "daemon.reconcile", "daemon.model", "daemon.zoom.policy",
        "daemon.recurrence", "daemon.result", "daemon.values",
        "daemon.calendars.graph_recurrence")
IO = ("httpx", "sqlite3", "socket", "requests", "googleapiclient", "msal",
      "daemon.store.sqlite", "daemon.store.postgres", "daemon.http", "daemon.zoom.client",
      "daemon.engine", "daemon.rooms", "daemon.writes", "websockets", "uvicorn")
# Bottom to top (README, "How the code is laid out"): a module imports from its own layer
# (acyclically) and the layers below, never from one above.
LAYERS: tuple[tuple[str, set[str]], ...] = (
    ("vocabulary", {"daemon", "daemon.model", "daemon.values", "daemon.errors", "daemon.logs",
                    "daemon.recurrence", "daemon.reconcile", "daemon.plan", "daemon.result",
                    "daemon.zoom", "daemon.zoom.policy", "daemon.zoom.links",
                    "daemon.calendars", "daemon.calendars.graph_recurrence",
                    "daemon.deploy"}),
    ("configuration and state", {
        "daemon.config", "daemon.environment", "daemon.http", "daemon.store",
        "daemon.store.files", "daemon.store.migrations", "daemon.store.sql", "daemon.store.push",
        "daemon.store.audit",
        "daemon.store.sqlite", "daemon.store.postgres", "daemon.leader", "daemon.overview",
        "daemon.metrics"}),
    ("vendors", {"daemon.calendars.base", "daemon.calendars.entra", "daemon.calendars.google",
                 "daemon.calendars.microsoft", "daemon.zoom.client",
                 "daemon.zoom.events", "daemon.receiver"}),
    ("one instructor's pass", {"daemon.rooms", "daemon.writes", "daemon.engine",
                               "daemon.roster"}),
    ("the runtime", {"daemon.app", "daemon.runtime", "daemon.runtime.passes",
                     "daemon.runtime.checks", "daemon.runtime.slot", "daemon.runtime.lead",
                     "daemon.runtime.notify", "daemon.runtime.watch", "daemon.runtime.push",
                     "daemon.runtime.inbox",
                     "daemon.nodes",
                     "daemon.doctor",
                     "daemon.service"}),
    ("commands", {"daemon.commands", "daemon.reports", "daemon.cli"}),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (annotations only, not imports)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            stack += node.orelse
            continue
        found.append(node)
        stack += ast.iter_child_nodes(node)
    return found


def imports() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package (and others) it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = found
    return graph


def test_no_import_circles() -> None:
    graph = imports()
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        for dependency in sorted(edges[module]):
            if dependency in path:
                circles.append(path[path.index(dependency):] + [dependency])
            elif len(path) < 12:
                visit(dependency, [*path, dependency])

    for module in sorted(edges):
        visit(module, [module])
    assert not circles, circles[:5]


def test_each_module_imports_only_its_layer_and_those_below() -> None:
    graph = imports()
    layer = {module: n for n, (_, modules) in enumerate(LAYERS) for module in modules}
    assert set(graph) == set(layer), "each module in one layer: " + ", ".join(
        sorted(set(graph) ^ set(layer)))
    upward = [f"{module} ({LAYERS[layer[module]][0]}) imports {dependency} "
              f"({LAYERS[layer[dependency]][0]})"
              for module, deps in sorted(graph.items()) for dependency in sorted(deps)
              if dependency in layer and layer[dependency] > layer[module]]
    assert not upward, upward


def test_the_runtime_imports_no_emulator() -> None:
    """The emulators (officehours_sandbox) use the runtime, never the other way round:
    `officehours demo` runs them in a process of their own."""
    for module, deps in imports().items():
        assert not {d for d in deps if d.startswith("officehours_sandbox")}, module


def test_pure_modules_do_no_io() -> None:
    graph = imports()
    for module in PURE:
        assert not {d for d in graph[module] if d.startswith(IO)}, module
