"""The code's shape, measured from its source: module and function sizes, the import graph.

Used by ``tests/test_structure.py``; run it to print the figures (``--graph`` adds every
module's imports, ``--dot`` the graph in Graphviz form):
``python tests/structure.py [--graph | --dot]``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "baselines")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass
class Module:
    """One source file: its lines, its functions' lengths and the project modules it imports."""

    name: str
    path: Path
    lines: int
    functions: dict[str, int] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported(node: ast.AST, current: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _absolute(node, current, is_package)
        return [base, *(f"{base}.{a.name}" for a in node.names)]
    return []


def _functions(tree: ast.AST, prefix: str = "") -> dict[str, int]:
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[f"{prefix}{node.name}:{node.lineno}"] = node.end_lineno - node.lineno + 1
    return out


def scan(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the project's packages, with imports resolved to project modules."""
    paths = {module_name(p, root): p
             for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}
    modules = {}
    for name, path in paths.items():
        text = path.read_text()
        tree = ast.parse(text)
        module = Module(name, path, len(text.splitlines()), _functions(tree))
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    module.imports.add(target)
        modules[name] = module
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(sorted(modules[start].imports)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(modules[w].imports))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return found


def _collapsed(modules: dict[str, Module]) -> dict[str, set[str]]:
    """The graph with each package drawn as one node (bench.harness.* -> bench.harness)."""
    def node(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2]) if parts[0] == "bench" else parts[0]
    graph: dict[str, set[str]] = {}
    for m in modules.values():
        graph.setdefault(node(m.name), set()).update(node(i) for i in m.imports)
    return {k: v - {k} for k, v in graph.items()}


def report(modules: dict[str, Module]) -> list[str]:
    """The figures: sizes, the largest modules and functions, cycles."""
    long_functions = sorted(((n, f"{m.name}.{f}") for m in modules.values()
                             for f, n in m.functions.items()), reverse=True)
    sizes = sorted(((m.lines, m.name) for m in modules.values()), reverse=True)
    return [
        f"modules: {len(modules)}, lines: {sum(s for s, _ in sizes)}",
        f"largest modules: {', '.join(f'{n} {s}' for s, n in sizes[:6])}",
        f"modules over {MAX_MODULE_LINES} lines: "
        f"{[(n, s) for s, n in sizes if s > MAX_MODULE_LINES] or 'none'}",
        f"longest functions: {', '.join(f'{n} {s}' for s, n in long_functions[:6])}",
        f"functions over {MAX_FUNCTION_LINES} lines: "
        f"{[(n, s) for s, n in long_functions if s > MAX_FUNCTION_LINES] or 'none'}",
        f"import cycles: {cycles(modules) or 'none'}",
    ]


def main(argv: list[str]) -> int:
    modules = scan()
    print("\n".join(report(modules)))
    if "--graph" in argv:
        for name, targets in sorted(_collapsed(modules).items()):
            print(f"{name} -> {', '.join(sorted(targets)) or '(nothing)'}")
    if "--dot" in argv:
        print("digraph imports {")
        for name, targets in sorted(_collapsed(modules).items()):
            for t in sorted(targets):
                print(f'  "{name}" -> "{t}";')
        print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
