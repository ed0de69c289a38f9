"""Fail on an import cycle or on a lower layer importing a higher one (run from the repository root).

The package's import graph is read with ``ast`` from the source tree (``augpaint_fast/``, plus ``export/`` and
``kernels/``, installed as ``augpaint_fast.export`` and ``augpaint_fast.kernels``); nothing is imported.

- Layers: every import, at module level or inside a function, goes to the importer's own layer or a lower one.
  A deferred (function-level) import still makes the higher layer a dependency of the lower one.
- Cycles: module-level imports only, the ones that run at import time; a function-level import is how a module
  breaks the cycle it would otherwise close (``ops.fused`` loads ``kernels`` only when the Triton path runs).

``augpaint_fast/__init__.py`` (public names loaded lazily) and ``__main__.py`` (runs the CLI) sit above every
layer. Prints one line per violation and exits 1; prints a summary and exits 0 when there is none.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

# Lowest first. A layer is one or more subpackages of augpaint_fast that may import each other; "" is the
# package root's own modules (errors, atomic, locks, progress, checks, host) and the shipped assets.
LAYERS = [
    ("", "assets"),
    ("core",),  # the algorithm: plain torch, no files, engines or CLI
    ("ops", "kernels"),  # kernel dispatch and the Triton kernels it dispatches to
    ("models",),  # networks, configs, checkpoints: no runtime
    ("data",),  # image/NIfTI IO, datasets, phantoms
    ("export",),  # ONNX/TensorRT artefacts, built without a runtime
    ("engines",),
    ("interop",),  # models from diffusers (and later MONAI) converted into weights folders
    ("job",),  # the sampling job
    ("training",),
    ("embed",),  # library API, batcher, Dataset, Ray, HTTP service
    ("segmentation",),
    ("pipeline",),
    ("bench",),
    ("cli",),
]
EXEMPT = {"augpaint_fast", "augpaint_fast.__main__"}
ROOTS = {"augpaint_fast": Path("augpaint_fast"), "augpaint_fast.export": Path("export"),
         "augpaint_fast.kernels": Path("kernels")}


def modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is_package) for every .py file of the package."""
    found = {}
    for root, folder in ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[0] in ("export", "kernels") and root == "augpaint_fast":  # symlinks to the top-level folders
                continue
            is_pkg = parts[-1] == "__init__"
            found[".".join([root, *parts[:-1 if is_pkg else None]])] = (path, is_pkg)
    return found


def imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for each import of a package module in ``path``."""
    package = name if is_pkg else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = set()  # module level: the body, and the bodies of if/try blocks there; not functions or classes
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # an attribute path: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, id(node) in top, node.lineno))
    return out


def layer_of(name: str, mods: dict[str, tuple[Path, bool]]) -> int | None:
    """The index in LAYERS of a module's subpackage (a module at the package root: layer 0)."""
    if name in EXEMPT:
        return None
    parts = name.split(".")
    sub = "" if len(parts) == 2 and not mods[name][1] else parts[1]
    for index, layer in enumerate(LAYERS):
        if sub in layer:
            return index
    raise SystemExit(f"{name}: its subpackage {sub!r} is in no layer of .ci/check_layers.py")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    mods = modules()
    known = set(mods)
    graph = {name: set() for name in mods}
    problems = []
    for name, (path, is_pkg) in mods.items():
        mine = layer_of(name, mods)
        for target, top_level, line in imports(name, path, is_pkg, known):
            if top_level:
                graph[name].add(target)
            theirs = layer_of(target, mods)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{path}:{line}: {name} (layer {mine}) imports {target} (layer {theirs}, higher)")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    for line in problems:
        print(line)
    if not problems:
        print(f"check_layers: {len(mods)} modules, {len(LAYERS)} layers, no cycle, no upward import")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
