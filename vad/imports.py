"""Which `vad` modules a module imports, transitively, read from the source (nothing is run).

Used to fingerprint the code a method's stages run (`vad.methods.plan`): every `import vad...`
and `from vad... import ...` counts, at module level or inside a function (lazy imports run
too), as do relative imports inside the package; imports under `if TYPE_CHECKING:` (type hints
only) do not. Example:

    closure_files("vad.methods.gmfc_vae")  # -> [.../vad/__init__.py, .../vad/cache.py, ...]
    module_closure("vad.cache")             # -> {"vad", "vad.cache"}
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "vad"
ROOT = Path(__file__).resolve().parent


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of `vad.x.y` (a module or a package's __init__), None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(module: str, level: int, name: str | None, is_package: bool) -> str:
    """The absolute name of a relative import `from .name import ...` seen in `module`."""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


@cache
def direct_imports(module: str, root: Path = ROOT) -> frozenset[str]:
    """The `vad` modules that `module`'s source names in import statements (not transitive)."""
    path = module_file(module, root)
    if path is None:
        raise ModuleNotFoundError(f"no source file for module {module!r} under {root}")
    return source_imports(path, module, root)


def source_imports(path: Path, module: str = "__main__", root: Path = ROOT) -> frozenset[str]:
    """The `vad` modules named in the import statements of the file `path` (e.g. a script).

    `from vad.a import b` counts `vad.a`, and `vad.a.b` too when that is a module itself;
    importing `vad.a.b` also runs the packages `vad` and `vad.a`, which are counted as well."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    found: set[str] = set()
    for node in _executed_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = (
                _absolute(module, node.level, node.module, is_package)
                if node.level
                else node.module or ""
            )
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    names = set()
    for name in found:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # the parent packages run first
            prefix = ".".join(parts[:depth])
            if module_file(prefix, root) is not None:
                names.add(prefix)
    names.discard(module)
    return frozenset(names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _executed_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (imports for type hints never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def module_closure(module: str, root: Path = ROOT) -> set[str]:
    """`module`, the packages above it, and every `vad` module it imports, directly or not."""
    parts = module.split(".")
    seen: set[str] = set()
    todo = [".".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name, root) - seen)
    return seen


def package_closure(package: str, root: Path = ROOT) -> set[str]:
    """Every module of the package folder (and below), and everything they import."""
    init = module_file(package, root)
    if init is None or init.name != "__init__.py":
        raise ModuleNotFoundError(f"{package!r} is not a package under {root}")
    modules: set[str] = set()
    for path in sorted(init.parent.rglob("*.py")):
        parts = path.relative_to(init.parent).with_suffix("").parts
        name = (
            ".".join((package, *parts[:-1]))
            if parts[-1] == "__init__"
            else ".".join((package, *parts))
        )
        modules |= module_closure(name, root)
    return modules


def closure_files(package: str, root: Path = ROOT) -> list[Path]:
    """Source files of `package_closure(package)`, sorted: the code a method's stages run."""
    names = package_closure(package, root)
    return sorted(path for name in names if (path := module_file(name, root)) is not None)


def script_closure(path: str | Path, root: Path = ROOT) -> set[str]:
    """Every `vad` module a script (e.g. stages/flow.py) imports, directly or not."""
    modules: set[str] = set()
    for name in source_imports(Path(path), root=root):
        modules |= module_closure(name, root)
    return modules
