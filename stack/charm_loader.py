"""Import a charm's own modules into a cross-charm test without name clashes.

Every charm keeps its modules in ``src/`` (``charm``, ``workload``,
``constants``...) and its relation endpoints in the ``src/relations`` package.
Two charms' ``workload`` modules cannot both be ``sys.modules["workload"]``, so
this loads one charm's modules with its ``src`` on the path, then takes the
names back out of ``sys.modules``: the loaded modules keep their references to
their siblings and keep working. A relation module is asked for by its bare
name (``"s3"`` loads ``relations.s3``) and comes back under that name.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
_cache: dict[str, dict[str, ModuleType]] = {}


def _qualified(src: Path, name: str) -> str:
    """``name``, or ``relations.<name>`` for a relation module of the charm."""
    if not (src / f"{name}.py").exists() and (src / "relations" / f"{name}.py").exists():
        return f"relations.{name}"
    return name


def charm_modules(charm: str, *names: str) -> SimpleNamespace:
    """The named modules of ``charms/<charm>/src``, loaded without clashing with other charms."""
    loaded = _cache.setdefault(charm, {})
    src = REPO / "charms" / charm / "src"
    wanted = {name: _qualified(src, name) for name in names}
    missing = [q for q in wanted.values() if q not in loaded]
    if missing:
        # Modules and folders of modules (packages, and in_container/ without an
        # __init__.py: a namespace package when the charm imports from it).
        tops = {p.stem for p in src.glob("*.py")} | {p.parent.name for p in src.glob("*/*.py")}

        def is_local(module: str) -> bool:
            return module.split(".", 1)[0] in tops

        saved = {n: sys.modules.pop(n) for n in list(sys.modules) if is_local(n)}
        sys.path.insert(0, str(src))
        try:
            # Siblings first, so a module imported later sees the same objects.
            for name in [*loaded, *missing]:
                sys.modules.setdefault(name, loaded.get(name) or importlib.import_module(name))
            for name in missing:
                loaded[name] = sys.modules[name]
        finally:
            sys.path.remove(str(src))
            for name in [n for n in list(sys.modules) if is_local(n)]:
                module = sys.modules.pop(name)
                loaded.setdefault(name, module)
            sys.modules.update(saved)
    return SimpleNamespace(**{name: loaded[wanted[name]] for name in names})
