"""The project's import graph, read from the source (no import runs): every `import` and
`from ... import` of a project module, at module level or inside a function, and every module named
by a string (`importlib.import_module('pretrain.tools.plot')`), as an edge."""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ('pretrain', 'finetune', '_utils', 'demo')


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob('*.py'):
            parts = path.relative_to(REPO).with_suffix('').parts
            modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return modules


def _imported_names(module: str, path: Path, tree: ast.AST) -> list[str]:
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != '__future__':
            base = node.module or ''
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition('.')[0]
                base = '.'.join(p for p in (anchor, base) if p)
            names += [base] + [f'{base}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.append(node.value)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a name resolves to the deepest module it names;
    a package's own `__init__` is not counted as imported by its modules)."""
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in _imported_names(module, path, ast.parse(path.read_text(encoding='utf-8'))):
            while name and name not in modules:
                name = name.rpartition('.')[0]
            if name and name != module and not module.startswith(name + '.'):
                edges.add(name)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest chain of imports (modules, importer first); the edges inside an import loop
    are left out, so that it ends on a graph with loops too."""
    looped = {m: i for i, component in enumerate(cycles(graph)) for m in component}
    edges = {v: [w for w in ws if v not in looped or looped[v] != looped.get(w)] for v, ws in graph.items()}

    @lru_cache(maxsize=None)
    def chain(v: str) -> tuple[str, ...]:
        return (v,) + max((chain(w) for w in edges[v]), key=len, default=())
    return list(max((chain(v) for v in graph), key=len))
