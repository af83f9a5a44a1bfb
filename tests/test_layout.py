"""The package's shape: one wing per stage, imports only downward, no import cycles, small modules.

Every module under ``arena_core/`` is parsed with :mod:`ast` (nothing is imported), and every
``import`` / ``from ... import`` counts: module level, inside functions, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "arena_core"

#: The wings, lowest first: a wing imports only from itself and the wings before it.
WINGS = ("config", "data", "encoding", "models", "evaluation", "inference", "training", "kaggle", "cli")
#: Above every wing and free to import anything: the package root (its re-exports are lazy) and the
#: notebook users' API. A wing may read the root's ``__version__``, nothing else from the top.
TOP = ("arena_core", "arena_core.api")
ROOT_NAMES_FOR_WINGS = {"__version__"}

MAX_LINES = 400
#: Modules allowed over the limit until they are split (issue 10 split the last ones). The set can
#: only shrink: a file listed here that is back under the limit fails the test until it is removed.
OVER_LIMIT_ALLOWED: set[str] = set()


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported arena_core module, dotted
    path: str  # importing file, relative to the repository
    lineno: int
    text: str  # the import statement as written
    lazy: bool  # inside a function

    def where(self) -> str:
        return f"{self.path}:{self.lineno}: {self.text}"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package`` (``__init__`` named as its package)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def module_imports(modules: dict[str, Path], root: Path = ROOT) -> list[Import]:
    """Every import of a package module by a package module, with its line."""
    top = next(iter(modules)).split(".")[0] if modules else "arena_core"
    found = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        lines = source.splitlines()
        lazy_nodes = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                lazy_nodes.update(id(n) for n in ast.walk(fn) if n is not fn)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        targets.append(sub)  # from pkg import submodule
                    elif base == top and alias.name not in ROOT_NAMES_FOR_WINGS:
                        targets.append(f"{top}.api")  # the root's lazy re-exports come from the API
                    else:
                        targets.append(base)
            else:
                continue
            text = " ".join(line.strip() for line in lines[node.lineno - 1 : node.end_lineno])
            for target in dict.fromkeys(targets):
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]  # import a.b.name -> the module a.b
                if target in modules and target != name:
                    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
                    found.append(Import(name, target, rel, node.lineno, text, id(node) in lazy_nodes))
    return sorted(found, key=lambda i: (i.path, i.lineno, i.target))


def wing_of(module: str) -> str | None:
    """The wing a module belongs to, or None for the top (root package, API)."""
    parts = module.split(".")
    if module in TOP or len(parts) < 2:
        return None
    return parts[1]


def rank(module: str) -> int:
    wing = wing_of(module)
    return len(WINGS) if wing is None else WINGS.index(wing)


def order_violations(imports: list[Import]) -> list[str]:
    """Imports from a higher wing (or from the API / the root's re-exports) by a wing module."""
    out = []
    for imp in imports:
        if wing_of(imp.source) is None:
            continue  # the top may import anything
        if imp.target == TOP[0]:
            continue  # `from arena_core import __version__`
        if rank(imp.target) > rank(imp.source):
            out.append(
                f"{imp.where()}\n    {wing_of(imp.source)} imports {imp.target} "
                f"({wing_of(imp.target) or 'top'}), a higher wing: order is {' < '.join(WINGS)}"
            )
    return out


def import_cycles(imports: list[Import]) -> list[tuple[list[str], list[Import]]]:
    """Each group of modules that import each other (sorted), with one cycle in it as import statements.

    Function-level imports count; only the root package's lazy re-exports (imports inside its
    ``__getattr__``, which run after every module is loaded) are left out.
    """
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.source == TOP[0] and imp.lazy:
            continue
        edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    # Tarjan's strongly connected components, iteratively (no recursion limit to worry about)
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(set(group))
    cycles = []
    for group in groups:
        first = min(group)
        # shortest path back to `first` inside the group (breadth first)
        paths = {first: []}
        queue = [first]
        cycle = None
        while queue and cycle is None:
            node = queue.pop(0)
            for child, imp in sorted(edges.get(node, {}).items()):
                if child not in group:
                    continue
                if child == first:
                    cycle = [*paths[node], imp]
                    break
                if child not in paths:
                    paths[child] = [*paths[node], imp]
                    queue.append(child)
        cycles.append((sorted(group), cycle))
    return cycles


def _format_cycle(group: list[str], cycle: list[Import]) -> str:
    chain = " -> ".join([cycle[0].source, *(imp.target for imp in cycle)])
    more = f"\n    (the group: {', '.join(group)})" if len(group) > len(cycle) else ""
    return (
        chain
        + more
        + "".join(f"\n    {imp.where()}" + (" (inside a function)" if imp.lazy else "") for imp in cycle)
    )


# ----------------------------------------------------------------------------- the rules on arena_core


@pytest.fixture(scope="module")
def package_imports() -> list[Import]:
    return module_imports(module_files())


def test_every_module_is_in_a_wing():
    for name in module_files():
        assert name in TOP or wing_of(name) in WINGS, (
            f"{name}: not in a wing; put it in one of arena_core/{{{','.join(WINGS[1:])}}}/ "
            "(config.py is the only flat module)"
        )
        if wing_of(name) == "config":
            assert name == "arena_core.config", f"{name}: config is one module, not a wing folder"


def test_wings_import_only_from_lower_wings(package_imports):
    assert len(package_imports) > 50  # the parser found the package's imports
    problems = order_violations(package_imports)
    assert not problems, "imports from a higher wing:\n" + "\n".join(problems)


def test_no_import_cycles(package_imports):
    cycles = import_cycles(package_imports)
    assert not cycles, "import cycles (break them by moving code down a wing or passing a callable):\n" + (
        "\n".join(_format_cycle(*c) for c in cycles)
    )


def test_modules_stay_small():
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in module_files().values()
    }
    too_long = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in OVER_LIMIT_ALLOWED}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concern): {too_long}"
    stale = sorted(p for p in OVER_LIMIT_ALLOWED if sizes.get(p, 0) <= MAX_LINES)
    assert not stale, f"now at most {MAX_LINES} lines (or gone): remove from OVER_LIMIT_ALLOWED: {stale}"


def _architecture_map_script():
    spec = importlib.util.spec_from_file_location(
        "architecture_map", ROOT / "scripts" / "architecture_map.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_map_is_current():
    script = _architecture_map_script()
    assert script.WINGS == WINGS
    committed = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert committed == script.architecture_map(), (
        f"docs/architecture.md is stale (a module was added, moved or re-described): run {script.REGENERATE}"
    )
    for name, path in module_files().items():  # every module (wing: its package) has its line
        rel = path.relative_to(ROOT).as_posix()
        shown = (
            f"**`{rel.removesuffix('__init__.py')}`**: "
            if path.parent != PACKAGE and path.name == "__init__.py"
            else f"`{rel}`: "
        )
        assert shown in committed, name


def test_architecture_map_needs_a_docstring_per_module(tmp_path):
    script = _architecture_map_script()
    pkg = tmp_path / "arena_core"
    for rel in ("__init__.py", "config.py", "api.py", *(f"{w}/__init__.py" for w in WINGS[1:])):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text('"""What it is for."""\n')
    (pkg / "data" / "files.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match=r"arena_core/data/files.py: no docstring"):
        script.architecture_map(pkg)
    (pkg / "data" / "files.py").write_text(
        '"""Reads :func:`~arena_core.data.files.read` files\n    in ``one`` go.\n\nMore."""\n'
    )
    assert "- `arena_core/data/files.py`: Reads `read` files in `one` go.\n" in script.architecture_map(pkg)
    (pkg / "stray.py").write_text('"""Flat."""\n')
    with pytest.raises(ValueError, match="outside every wing.*arena_core/stray.py"):
        script.architecture_map(pkg)


# ----------------------------------------------------------------------------- the checker itself


def _fake_package(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    pkg = tmp_path / "arena_core"
    for rel, text in {"__init__.py": "", **files}.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_imports(module_files(pkg), tmp_path)


def test_checker_reports_upward_imports_with_file_and_line(tmp_path):
    imports = _fake_package(
        tmp_path,
        {
            "config.py": "",
            "data/__init__.py": "",
            "data/files.py": "def f():\n    from arena_core.cli.main import run\n",
            "evaluation/__init__.py": "",
            "evaluation/report.py": "from ..data import files\nfrom arena_core import train\n",
            "cli/__init__.py": "",
            "cli/main.py": "from arena_core import __version__\nimport arena_core.evaluation.report\n",
            "api.py": "def train():\n    from arena_core.cli import main\n",
        },
    )
    problems = order_violations(imports)
    assert len(problems) == 2, problems
    assert problems[0].startswith("arena_core/data/files.py:2: from arena_core.cli.main import run")
    assert "data imports arena_core.cli.main (cli)" in problems[0]
    assert problems[1].startswith("arena_core/evaluation/report.py:2: from arena_core import train")
    assert "arena_core.api (top)" in problems[1]
    relative = [i for i in imports if i.source == "arena_core.evaluation.report" and i.lineno == 1]
    assert [i.target for i in relative] == ["arena_core.data.files"]  # relative import resolved


def test_checker_finds_cycles_through_function_level_imports(tmp_path):
    imports = _fake_package(
        tmp_path,
        {
            "cli/__init__.py": "",
            "cli/main.py": "def demo():\n    from arena_core.cli.demo import run\n",
            "cli/demo.py": "from arena_core.cli import helpers\n",
            "cli/helpers.py": "def f():\n    from arena_core.cli.main import main\n",
            "cli/other.py": "from arena_core.cli import helpers\n",
            "api.py": "from arena_core.cli import main\n",
            "__init__.py": "def __getattr__(name):\n    from arena_core import api\n",
        },
    )
    cycles = import_cycles(imports)
    assert len(cycles) == 1  # the root's lazy __getattr__ -> api -> ... is not a cycle
    assert cycles[0][0] == ["arena_core.cli.demo", "arena_core.cli.helpers", "arena_core.cli.main"]
    text = _format_cycle(*cycles[0])
    assert text.startswith(
        "arena_core.cli.demo -> arena_core.cli.helpers -> arena_core.cli.main -> arena_core.cli.demo"
    )
    assert "arena_core/cli/helpers.py:2: from arena_core.cli.main import main (inside a function)" in text
