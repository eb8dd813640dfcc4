"""Which package code a job runs, as a digest: a rule parameter, so that editing a package module reruns
exactly the rules whose scripts import it (directly or through other modules), and nothing else.

Snakemake's own ``code`` rerun trigger sees only the script file; the science lives in the package under
``src/``, which a script reaches through imports. The imports are read statically (every ``import`` /
``from ... import`` of the package anywhere in a file, function-level ones included, since the package
imports heavy modules lazily), followed transitively, and the sources hashed. Two lazy forms count too:
a string naming a package module (``"mixmil_workflow.models.mixmil:MixMIL"``, how the model registry names
classes) is an import of that module by the file holding it, and a name a package exports lazily
(``_EXPORTS`` in its ``__init__``) is an import of the module it comes from. The digest is per rule, so a
rule shared by several models (one fit rule) reruns for an edit of any model module its script reaches.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = "mixmil_workflow"
_MODULE_STRING = re.compile(rf"^{PACKAGE}(\.\w+)+(:\w+)?$")


@cache
def _module_file(src: Path, module: str) -> Path | None:
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _lazy_exports(src: Path, package: str) -> dict[str, str]:
    """Name -> module of a package's lazy exports (its ``_EXPORTS = {name: ".module"}``)."""
    init = src.joinpath(*package.split("."), "__init__.py")
    if not init.is_file():
        return {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
            return {name: f"{package}.{module.lstrip('.')}" for name, module in exports.items()}
    return {}


@cache
def _imported_modules(path: Path, src: Path) -> frozenset[str]:
    """The package modules a file imports (``from pkg.a import b`` counts pkg.a and pkg.a.b when b is a
    module), with the packages above each. Cached: every rule's script reaches mostly the same modules, and
    the workflow is parsed at every invocation (and in every cluster job)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
                exported = _lazy_exports(src, node.module).get(alias.name)
                if exported:
                    found.add(exported)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            found.add(node.value.partition(":")[0])
    modules = set()
    for name in found:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            modules.update(".".join(parts[: k + 1]) for k in range(len(parts)))
    return frozenset(modules)


@cache
def _closure(src: str, start: str) -> tuple[str, ...]:
    """Every package source file that ``start`` reaches through imports, sorted."""
    root = Path(src)
    seen: set[Path] = set()
    todo = [Path(start)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path, root):
            target = _module_file(root, module)
            if target is not None and target not in seen:
                todo.append(target)
    seen.discard(Path(start))
    return tuple(sorted(str(p) for p in seen))


def package_modules(script: str | Path, src: str | Path) -> list[str]:
    """The package files (relative to ``src``) that ``script`` imports, transitively."""
    src = Path(src).resolve()
    return [str(Path(p).relative_to(src)) for p in _closure(str(src), str(Path(script).resolve()))]


@cache
def _source(path: Path) -> bytes:
    return path.read_bytes()


def code_digest(script: str | Path, src: str | Path) -> str:
    """sha256 of the package modules ``script`` runs (paths and contents; the script itself is Snakemake's
    own ``code`` trigger)."""
    src = Path(src).resolve()
    digest = hashlib.sha256()
    for relative in package_modules(script, src):
        digest.update(relative.encode() + b"\0" + _source(src / relative) + b"\0")
    return digest.hexdigest()[:16]
