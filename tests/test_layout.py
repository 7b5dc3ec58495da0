"""The shape of the code: no import circles among the program's modules (imports inside
functions count too), and the pure modules import no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daemon"
PURE = ("daemon.plan", "daemon.reconcile", "daemon.model", "daemon.zoom.policy",
        "daemon.recurrence",
        "daemon.calendars.graph_recurrence")
IO = ("httpx", "sqlite3", "socket", "requests", "googleapiclient", "msal",
      "daemon.store.sqlite", "daemon.store.postgres", "daemon.http", "daemon.zoom.client",
      "daemon.engine")


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


def test_the_runtime_imports_no_emulator() -> None:
    """The emulators (officehours_sandbox) use the runtime, never the other way round:
    `officehours demo` runs them in a process of their own."""
    for module, deps in imports().items():
        assert not {d for d in deps if d.startswith("officehours_sandbox")}, module


def test_pure_modules_do_no_io() -> None:
    graph = imports()
    for module in PURE:
        assert not {d for d in graph[module] if d.startswith(IO)}, module
