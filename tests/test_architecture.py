"""The layering of docs/architecture.md, checked on the source with ``ast``.

* The core (every module of ``refquant/`` except ``refquant/cli.py``; the adapter's
  source is the top-level ``adapters/``) never imports ``refquant.adapters`` or
  ``refquant.cli``: module-level and function-level imports, relative imports resolved
  (``from ..adapters import x``), and
  module names given as string literals (or f-strings) to ``importlib.import_module`` /
  ``__import__``.
  Imports under ``if TYPE_CHECKING:`` count here too: the core does not even name them.
* The import graph of ``refquant/`` has no cycle. Every import that runs counts, also those
  inside functions (only ``if TYPE_CHECKING:`` blocks are left out); an f-string module
  name (``f"{__name__}.{mod}"``) stands for every module it can match; importing ``a.b.c``
  from outside package ``a.b`` also runs ``a/b/__init__.py``, so it is an edge to ``a.b``
  too. :data:`DEFERRED_IMPORTS` would list deliberate exceptions; there are none.
* The leaves (kernels, qparams, histogram, profiles, _validation, _numerics and the other
  private leaf modules) import only leaves; observers and quanters import no conformance,
  testing, plotting, demo, adapters or cli.

Each checker is a function of a source root, so the tests below also run it on small
synthetic trees written to ``tmp_path`` and show that it reports what it should.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "refquant"

#: Modules outside the core: they may import anything.
OUTSIDE_CORE = ("refquant.adapters", "refquant.cli")
#: The bottom layer: NumPy / SciPy only, and each other.
LEAVES = ("refquant.kernels", "refquant.qparams", "refquant.histogram", "refquant.profiles",
          "refquant._validation", "refquant._numerics", "refquant._compat",
          "refquant._compare", "refquant._stderr")
#: What the observer and quanter layer never imports.
ABOVE_OBSERVERS = ("refquant.conformance", "refquant.testing", "refquant.plotting",
                   "refquant.demo", "refquant.adapters", "refquant.cli")
_IMPORT_FUNCTIONS = {"import_module", "__import__"}

#: The function-level imports that close cycles inside ``refquant.conformance`` and are
#: not split yet, with why each exists. The cycle test leaves exactly these edges out; it
#: fails if one of them moves to module level or no longer exists (so the list only
#: shrinks), and on every other cycle.
DEFERRED_IMPORTS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import in ``source`` (a module name) of ``target`` at ``line``."""

    source: str
    target: str
    line: int
    implicit: bool = False  # a package __init__ run because a submodule was imported
    lazy: bool = False  # inside a function: runs when the function is first called

    def __str__(self) -> str:
        how = " (its package __init__)" if self.implicit else ""
        when = " inside a function" if self.lazy else ""
        return f"{self.source}:{self.line} imports {self.target}{how}{when}"


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def find_modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``root/package``, plus the adapters kept
    in ``root/adapters/`` (importable as ``refquant.adapters.<name>``)."""
    trees = [(root / package, [package])]
    if package == PACKAGE and (root / "adapters").is_dir():
        trees.append((root / "adapters", [PACKAGE, "adapters"]))
    modules = {}
    for base, prefix in trees:
        for path in sorted(base.rglob("*.py")):
            parts = prefix + list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """``from <level dots><name> import ...`` inside ``module``, as an absolute name."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _string_pattern(node: ast.expr, module: str, package: str) -> str | None:
    """The module name a string expression can take, as an ``fnmatch`` pattern (``*`` for
    every part that is not known statically), or None when nothing of it is a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("__name__", "__package__"):
        return module if node.id == "__name__" else package
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name) \
                and value.value.id in ("__name__", "__package__"):
            parts.append(module if value.value.id == "__name__" else package)
        else:
            parts.append("*")
    pattern = "".join(parts)
    return None if pattern.strip("*.") == "" else pattern


def _call_targets(call: ast.Call, module: str, package: str) -> list[str]:
    """Module names (patterns) given to ``importlib.import_module`` / ``__import__``."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)
    if name not in _IMPORT_FUNCTIONS or not call.args:
        return []
    pattern = _string_pattern(call.args[0], module, package)
    if pattern is None:
        return []
    if pattern.startswith("."):  # import_module(".x", package=__name__ / __package__)
        anchor = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "package"), None)
        base = _string_pattern(anchor, module, package) if anchor is not None else None
        if base is None:
            return []
        level = len(pattern) - len(pattern.lstrip("."))
        pattern = _resolve_relative(base, True, level, pattern.lstrip(".") or None)
    return [pattern]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _nodes(tree: ast.AST, runtime_only: bool) -> Iterable[tuple[ast.AST, bool]]:
    """Every node of ``tree`` with whether it lies inside a function; ``runtime_only``
    leaves out the bodies of ``if TYPE_CHECKING:`` (never run)."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, lazy = todo.pop()
        yield node, lazy
        inner = lazy or isinstance(node, _FUNCTIONS)
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            children: list[ast.AST] = [node.test, *node.orelse]
        else:
            children = list(ast.iter_child_nodes(node))
        todo += [(child, inner) for child in children]


def raw_imports(module: str, path: Path, runtime_only: bool = True
                ) -> list[tuple[str, int, bool]]:
    """Every module name ``module`` imports (absolute; patterns for f-strings), with the
    line and whether the import is inside a function. ``from X import a`` yields ``X.a``:
    a submodule, or a name defined in ``X`` (:func:`_resolve` then finds ``X``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []
    for node, lazy in _nodes(tree, runtime_only):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module, _is_package(path), node.level, node.module)
            found += [(base if alias.name == "*" else f"{base}.{alias.name}", node.lineno, lazy)
                      for alias in node.names]
        elif isinstance(node, ast.Call):
            found += [(t, node.lineno, lazy) for t in _call_targets(node, module, package)]
    return sorted(found, key=lambda f: (f[1], f[0]))


def _resolve(target: str, modules: dict[str, Path]) -> set[str]:
    """The modules of the tree that importing ``target`` (a name or pattern) loads last."""
    if any(c in target for c in "*?["):
        return {m for m in modules if fnmatch.fnmatchcase(m, target)}
    name = target
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return {name} if name else set()


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, list[Import]]:
    """Module -> the imports of modules of the same tree (explicit and implicit)."""
    modules = find_modules(root, package)
    graph: dict[str, list[Import]] = {}
    for module, path in modules.items():
        edges: dict[tuple[str, bool], Import] = {}
        # module-level imports first, so an edge is lazy only if every such import is
        for target, line, lazy in sorted(raw_imports(module, path), key=lambda f: f[2]):
            if not _within(target.split("*")[0].rstrip("."), (package,)):
                continue
            for resolved in _resolve(target, modules):
                if resolved != module:
                    edges.setdefault((resolved, False), Import(module, resolved, line, False,
                                                               lazy))
                # importing a.b.c from outside a.b runs a/b/__init__.py first
                parent = resolved.rpartition(".")[0]
                while parent and parent != package:
                    if not _within(module, (parent,)):
                        edges.setdefault((parent, True), Import(module, parent, line, True,
                                                                lazy))
                    parent = parent.rpartition(".")[0]
        graph[module] = sorted(edges.values(), key=lambda e: (e.line, e.target))
    return graph


def forbidden_core_imports(root: Path, package: str = PACKAGE) -> list[str]:
    """Imports of ``refquant.adapters`` / ``refquant.cli`` by modules of the core."""
    problems = []
    for module, path in find_modules(root, package).items():
        if _within(module, OUTSIDE_CORE):
            continue
        for target, line, _ in raw_imports(module, path, runtime_only=False):
            hit = any(fnmatch.fnmatchcase(p, target) or _within(target, (p,))
                      for p in OUTSIDE_CORE)
            if hit:
                problems.append(f"{path.relative_to(root)}:{line}: {module} imports {target}")
    return sorted(set(problems))


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle (as its chain of imports) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for edge in graph.get(v, []):
            w = edge.target
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for comp in components:
        if len(comp) < 2:
            continue
        start = min(comp)
        cycles.append(_path_back(graph, comp, start))
    return sorted(cycles, key=lambda c: c[0].source)


def _path_back(graph: dict[str, list[Import]], comp: set[str], start: str) -> list[Import]:
    """A shortest chain of imports inside ``comp`` from ``start`` back to ``start``."""
    prev: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for edge in graph.get(v, []):
                if edge.target not in comp or edge.target in prev:
                    continue
                prev[edge.target] = edge
                if edge.target == start:
                    chain = [edge]
                    while chain[0].source != start:
                        chain.insert(0, prev[chain[0].source])
                    return chain
                nxt.append(edge.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def describe_cycle(graph: dict[str, list[Import]], cycle: list[Import]) -> str:
    """The modules of the cycle's strongly connected component and one chain through it."""
    members = _component(graph, cycle[0].source)
    return (f"{len(members)} modules import each other: {', '.join(sorted(members))}\n"
            f"for example:\n  " + " ->\n  ".join(str(e) for e in cycle))


def _component(graph: dict[str, list[Import]], start: str) -> set[str]:
    def reach(edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for w in edges.get(todo.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    forward = {v: {e.target for e in es} for v, es in graph.items()}
    backward: dict[str, set[str]] = {}
    for v, ws in forward.items():
        for w in ws:
            backward.setdefault(w, set()).add(v)
    return reach(forward) & reach(backward)


def cycle_problems(root: Path, deferred: Mapping[tuple[str, str], str],
                   package: str = PACKAGE) -> list[str]:
    """The import cycles of the tree once the ``deferred`` (importer, imported) edges are left
    out, plus a problem for each deferred edge that is missing or not inside a function."""
    full = import_graph(root, package)
    problems = []
    kept = [e for edges in full.values() for e in edges if (e.source, e.target) in deferred]
    for pair in sorted(set(deferred) - {(e.source, e.target) for e in kept}):
        problems.append(f"deferred import {pair[0]} -> {pair[1]} no longer exists: "
                        f"remove it from the list")
    problems += [f"deferred import at module level: {e}" for e in kept if not e.lazy]
    graph = {v: [e for e in edges if (e.source, e.target) not in deferred]
             for v, edges in full.items()}
    problems += [describe_cycle(graph, c) for c in find_cycles(graph)]
    return problems


def layering_violations(root: Path, package: str = PACKAGE) -> list[str]:
    """Explicit imports that break the table of docs/architecture.md."""
    problems = []
    for module, edges in import_graph(root, package).items():
        if _within(module, LEAVES):
            bad = [e for e in edges if not e.implicit and not _within(e.target, LEAVES)]
            problems += [f"leaf {e}" for e in bad]
        if _within(module, ("refquant.observers", "refquant.quanters")):
            bad = [e for e in edges if not e.implicit and _within(e.target, ABOVE_OBSERVERS)]
            problems += [f"observer/quanter layer: {e}" for e in bad]
    return problems


# ----------------------------------------------------------------------------- the project


def test_core_never_imports_the_adapter_or_the_cli():
    problems = forbidden_core_imports(ROOT)
    assert not problems, "the core imports the adapter or the CLI:\n" + "\n".join(problems)


def test_no_import_cycles():
    problems = cycle_problems(ROOT, DEFERRED_IMPORTS)
    assert not problems, "\n\n".join(problems)


def test_layers_import_only_below():
    problems = layering_violations(ROOT)
    assert not problems, "\n".join(problems)


def test_the_checker_sees_the_whole_tree():
    """The graph covers the adapter, the conformance targets and lazy imports."""
    graph = import_graph(ROOT)
    assert {"refquant.cli", "refquant.adapters.paddle.observers",
            "refquant.conformance.targets.paddleslim", "refquant.kernels.onnx"} <= set(graph)
    cases = {e.target for e in graph["refquant.conformance.cases"]}
    assert "refquant.conformance.cases.observer_cases" in cases  # f"{__name__}.{_mod}"


# ------------------------------------------------------- the checkers on synthetic trees


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in files:  # every directory on the way is a package
        parent = (root / rel).parent
        while parent != root:
            (parent / "__init__.py").touch()
            parent = parent.parent
    return root


_CORE_IMPORTS_OF_THE_ADAPTER = {
    "module_level.py": "import refquant.adapters.paddle\n",
    "from_parent.py": "from refquant import adapters\n",
    "relative.py": "from .adapters import paddle\n",
    "sub/relative_up.py": "def f():\n    from ..adapters.paddle import demo\n",
    "sub/relative_cli.py": "from .. import cli\n",
    "lazy_string.py": "import importlib\n\ndef f():\n"
                      "    return importlib.import_module('refquant.adapters.paddle.demo')\n",
    "lazy_dunder.py": "def f():\n    return __import__('refquant.cli')\n",
    "lazy_relative.py": "from importlib import import_module\n\ndef f():\n"
                        "    return import_module('.adapters', package=__package__)\n",
    "lazy_fstring.py": "import importlib\n\ndef f(x):\n"
                       "    return importlib.import_module(f'refquant.adapters.{x}')\n",
}


def test_forbidden_imports_are_found_in_every_form(tmp_path):
    files = {f"refquant/{k}": v for k, v in _CORE_IMPORTS_OF_THE_ADAPTER.items()}
    files["refquant/adapters/paddle/demo.py"] = "import refquant.cli\n"  # allowed there
    files["refquant/cli.py"] = "import refquant.adapters.paddle.demo\n"  # allowed there
    files["refquant/fine.py"] = ("'''refquant.adapters is named in prose only.'''\n"
                                 "from . import kernels\nimport importlib\n"
                                 "def f(mod):\n    return importlib.import_module(mod)\n")
    files["refquant/kernels/__init__.py"] = ""
    problems = forbidden_core_imports(_tree(tmp_path, files))
    flagged = {p.split(":")[0] for p in problems}
    assert flagged == {f"refquant/{k}" for k in _CORE_IMPORTS_OF_THE_ADAPTER}, problems


def test_cycles_are_found_through_functions_strings_and_package_inits(tmp_path):
    root = _tree(tmp_path, {
        # a -> b at module level, b -> a inside a function
        "refquant/a.py": "from . import b\n",
        "refquant/b.py": "def f():\n    from .a import g\n",
        # helpers imports pkg.compare, which runs pkg/__init__, which reaches pkg.cases.x
        # through an f-string; pkg.cases.x imports helpers
        "refquant/helpers.py": "from .pkg.compare import m\n",
        "refquant/pkg/__init__.py": "from . import registry\n",
        "refquant/pkg/compare.py": "",
        "refquant/pkg/registry.py": "import importlib\nfor n in ('x',):\n"
                                    "    importlib.import_module(f'refquant.pkg.cases.{n}')\n",
        "refquant/pkg/cases/x.py": "from ...helpers import h\n",
        # no cycle: a submodule importing its own package's sibling
        "refquant/ok/__init__.py": "from .one import v\n",
        "refquant/ok/one.py": "from .two import w\n",
        "refquant/ok/two.py": "",
    })
    cycles = find_cycles(import_graph(root))
    members = sorted(sorted({e.source for e in c}) for c in cycles)
    assert members == [
        ["refquant.a", "refquant.b"],
        ["refquant.helpers", "refquant.pkg", "refquant.pkg.cases.x", "refquant.pkg.registry"],
    ], [[str(e) for e in c] for c in cycles]
    for cycle in cycles:  # each chain closes on itself
        assert cycle[0].source == cycle[-1].target
        assert all(x.target == y.source for x, y in zip(cycle, cycle[1:], strict=False))


def test_layering_violations_are_found(tmp_path):
    root = _tree(tmp_path, {
        "refquant/kernels/onnx.py": "from .. import _validation\nfrom ..observers import base\n",
        "refquant/qparams.py": ("def f():\n    from .histogram import h\n"
                                "    from . import testing\n"),
        "refquant/histogram.py": "",
        "refquant/_validation.py": "",
        "refquant/testing.py": "",
        "refquant/observers/base.py": "from ..qparams import QParams\n",
        "refquant/observers/kl.py": "def f():\n    from ..conformance.compare import x\n",
        "refquant/quanters/pact.py": "import refquant.plotting\n",
        "refquant/conformance/compare.py": "",
        "refquant/plotting.py": "from .observers import base\n",
    })
    problems = layering_violations(root)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    for needle in ("refquant.kernels.onnx:2 imports refquant.observers.base",
                   "refquant.qparams:3 imports refquant.testing",
                   "refquant.observers.kl:2 imports refquant.conformance.compare",
                   "refquant.quanters.pact:1 imports refquant.plotting"):
        assert needle in text, problems


def test_deferred_imports_are_checked(tmp_path):
    root = _tree(tmp_path, {
        "refquant/a.py": "from . import b\n",
        "refquant/b.py": "def f():\n    from . import a\n",
        "refquant/c.py": "from . import d\n",
        "refquant/d.py": "from . import c\n",
    })
    deferred = {("refquant.b", "refquant.a"): "lazy", ("refquant.d", "refquant.c"): "eager",
                ("refquant.a", "refquant.x"): "gone"}
    problems = cycle_problems(root, deferred)
    assert len(problems) == 2, problems
    assert "refquant.a -> refquant.x no longer exists" in problems[0]
    assert problems[1].startswith("deferred import at module level: refquant.d:1 imports "
                                  "refquant.c"), problems
    # a deferred edge that is inside a function breaks its cycle; nothing else is excused
    assert cycle_problems(root, {("refquant.b", "refquant.a"): "lazy"})[0].startswith(
        "2 modules import each other: refquant.c, refquant.d")
    assert cycle_problems(root, {("refquant.b", "refquant.a"): "", ("refquant.d", "refquant.c"):
                                 ""}) == ["deferred import at module level: refquant.d:1 "
                                          "imports refquant.c"]


def test_type_checking_imports_run_never_but_still_count_as_naming(tmp_path):
    root = _tree(tmp_path, {
        "refquant/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from . import b\nelse:\n    from . import c\n",
        "refquant/b.py": "from . import a\n",
        "refquant/c.py": "",
        "refquant/typed.py": "import typing\nif typing.TYPE_CHECKING:\n"
                             "    from refquant.adapters.paddle import PTQ\n",
    })
    graph = import_graph(root)
    assert [e.target for e in graph["refquant.a"]] == ["refquant.c"]
    assert find_cycles(graph) == []
    assert [p.split(":")[0] for p in forbidden_core_imports(root)] == ["refquant/typed.py"]


# ------------------------------------------- conformance targets declared by entry points


def test_the_adapters_target_is_declared_by_entry_point():
    """pyproject.toml declares ``paddle`` in the group the core reads, pointing at a
    ``Target`` subclass of the adapter, and the installed metadata has it."""
    import tomllib

    from refquant.conformance.targets import ENTRY_POINT_GROUP, TARGET_NAMES

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    value = project["entry-points"][ENTRY_POINT_GROUP]["paddle"]
    module, _, attr = value.partition(":")
    assert module == "refquant.adapters.paddle.conformance_target"
    tree = ast.parse(find_modules(ROOT)[module].read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert [ast.unparse(b) for b in classes[attr].bases] == ["Target"]
    assert "paddle" in TARGET_NAMES, "reinstall refquant: its entry points are not installed"


def _plugin(tmp_path, monkeypatch, body: str):
    from importlib.metadata import EntryPoint

    from refquant.conformance.targets import ENTRY_POINT_GROUP

    name = f"rq_plugin_{abs(hash(body)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, EntryPoint("fake", f"{name}:FakeTarget", ENTRY_POINT_GROUP)


def test_a_declared_target_is_imported_on_first_use(tmp_path, monkeypatch):
    import sys

    import numpy as np

    from refquant.conformance.format import Case
    from refquant.conformance.targets import DeclaredTarget

    name, ep = _plugin(tmp_path, monkeypatch, (
        "import numpy as np\n"
        "from refquant.conformance.targets import Target\n"
        "class FakeTarget(Target):\n"
        "    name = 'fake'\n"
        "    def _load(self):\n"
        "        self.ops['op.double'] = lambda case: {'y': case.inputs['x'] * 2}\n"))
    target = DeclaredTarget("fake", ep)
    assert name not in sys.modules
    assert target.missing() is None and name in sys.modules
    case = Case(id="c", op="op.double", kind="kernel", family="f", params={},
                inputs={"x": np.arange(3, dtype=np.int32)}, outputs={"y": np.zeros(3, np.int32)})
    target.load()  # as the runner does before asking which cases a target supports
    assert target.supports(case)
    assert target.run(case)["y"].tolist() == [0, 2, 4]


def test_a_declared_target_whose_framework_is_missing_says_so(tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    from refquant.conformance.targets import ENTRY_POINT_GROUP, DeclaredTarget

    _, ep = _plugin(tmp_path, monkeypatch, "import rq_no_such_framework\n")
    assert DeclaredTarget("fake", ep).missing() == (
        "target 'fake' needs the Python package 'rq_no_such_framework' "
        "(No module named 'rq_no_such_framework')")
    gone = EntryPoint("fake", "rq_no_such_module:FakeTarget", ENTRY_POINT_GROUP)
    assert "'rq_no_such_module'" in DeclaredTarget("fake", gone).missing()


def test_an_entry_point_cannot_replace_a_built_in_target(monkeypatch):
    from importlib.metadata import EntryPoint

    from refquant.conformance import targets

    eps = [EntryPoint("reference", "x:Y", targets.ENTRY_POINT_GROUP),
           EntryPoint("extra", "x:Z", targets.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(targets, "entry_points", lambda group: eps)
    assert list(targets._declared()) == ["extra"]
