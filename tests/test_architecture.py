"""The package tree is the architecture: imports run one way, from the CLI down to the networks.

Every ``import`` in ``srcli/`` (module level or inside a function) is read with ``ast``; a
module may import its own package and the layers below it, never one above, and the module
graph has no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "srcli"

#: Highest first. ``srcli`` itself (the public re-exports) and ``__main__`` sit above everything.
LAYERS = [
    ("srcli", "srcli.__main__"),
    ("srcli.cli",),
    ("srcli.train",),
    ("srcli.evaluation",),
    ("srcli.images",),
    ("srcli.degradation",),
    ("srcli.inference",),
    ("srcli.checkpoints",),
    ("srcli.nets",),
    ("srcli.errors", "srcli.version", "srcli.files", "srcli.imresize", "srcli.defaults"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "srcli" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer; add its package to LAYERS")
    return best


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """srcli modules that ``path`` imports (``from . import x`` counts as importing module x)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("srcli"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("srcli"):
                target = node.module
            else:
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in modules else target)
    found.discard(own)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(SRC.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_import_points_up_a_layer() -> None:
    upward = [f"{module} imports {target}" for module, targets in import_graph().items()
              for target in targets if layer_of(target) < layer_of(module)]
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_module_graph_has_no_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if target in ("srcli",):  # the package root only re-exports
                continue
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if state.get(module) is None:
            visit(module, [module])


def test_the_checker_sees_upward_and_cyclic_imports(tmp_path: Path) -> None:
    """The walker must not pass by seeing nothing: it finds the imports it is there to forbid."""
    graph = import_graph()
    assert "srcli.checkpoints.io" in graph["srcli.checkpoints.layouts"] or \
        "srcli.checkpoints.layouts" in graph["srcli.checkpoints.io"]
    assert "srcli.checkpoints.registry" in graph["srcli.checkpoints.io"]  # from . import registry
    assert layer_of("srcli.cli.upscale") < layer_of("srcli.nets.edsr")
