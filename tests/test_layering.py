# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The package's layering (docs/architecture.md): which sub-package may import which, and no import cycles."""

from __future__ import annotations

import ast
import os
import unittest
from collections import defaultdict

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "aisam_monai")

# Each sub-package (or top-level module) and the sub-packages it may import; the order is the layering, bottom up.
ALLOWED = {
    "networks": set(),
    "losses": set(),
    "transforms": set(),
    "io": {"transforms", "networks"},
    "data": {"io", "transforms"},
    "metrics": {"io"},
    "visualize": {"io"},
    "inferers": {"io", "networks", "transforms"},
    "handlers": {"io", "metrics"},
    "engines": {"inferers", "io", "handlers", "metrics", "networks", "transforms"},
    "interactive": {"io", "networks", "transforms", "visualize", "inferers"},
    "serve": {"interactive", "io"},
    "cli": {"interactive", "serve", "io", "visualize"},
    "serving": {"data", "interactive", "io"},
    "quickstart": {"visualize", "interactive", "data", "io"},
    "experiments": {"quickstart", "data", "io", "metrics"},
}


def _imports() -> dict[str, dict[str, set[str]]]:
    """``{module: {package it belongs to: ..., imported aisam_monai modules}}`` from the source, by AST."""
    found: dict[str, set[str]] = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            module = rel.removesuffix(".__init__")
            targets = set()
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = module.split(".")[: len(module.split(".")) - node.level + (name == "__init__.py")]
                        targets.add(".".join(base + ([node.module] if node.module else [])))
                    elif node.module:
                        targets.add(node.module)
                elif isinstance(node, ast.Import):
                    targets.update(a.name for a in node.names)
            found[module] = {t for t in targets if t == "aisam_monai" or t.startswith("aisam_monai.")}
    return found


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


class TestLayering(unittest.TestCase):
    def test_every_package_imports_only_the_layers_below(self):
        wrong = []
        for module, targets in sorted(_imports().items()):
            own = _package(module)
            if own is None:
                continue
            self.assertIn(own, ALLOWED, f"{module}: a new package; give it its place in ALLOWED and the docs")
            for target in targets:
                other = _package(target)
                if other not in (None, own) and other not in ALLOWED[own]:
                    wrong.append(f"{module} imports {target}")
        self.assertEqual(wrong, [])

    def test_no_import_cycles_between_modules(self):
        graph = defaultdict(set)
        modules = _imports()
        for module, targets in modules.items():
            for target in targets:
                while target not in modules and "." in target:  # `from pkg.mod import name` -> pkg.mod
                    target = target.rsplit(".", 1)[0]
                if target != module and not module.startswith(target + "."):  # a package importing its own part
                    graph[module].add(target)
        state: dict[str, int] = {}
        cycle: list[str] = []

        def visit(node: str, path: list[str]) -> bool:
            state[node] = 1
            for nxt in sorted(graph[node]):
                if state.get(nxt) == 1:
                    cycle.extend(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
                    return True
                if state.get(nxt) is None and visit(nxt, path + [nxt]):
                    return True
            state[node] = 2
            return False

        for module in sorted(graph):
            if state.get(module) is None and visit(module, [module]):
                break
        self.assertEqual(cycle, [])


if __name__ == "__main__":
    unittest.main()
