"""Import a charm's own modules into a cross-charm test without name clashes.

Every charm keeps flat modules in ``src/`` (``charm``, ``workload``,
``constants``...). Two charms' ``workload`` modules cannot both be
``sys.modules["workload"]``, so this loads one charm's modules with its
``src`` on the path, then takes the bare names back out of ``sys.modules``:
the loaded modules keep their references to their siblings and keep working.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
_cache: dict[str, dict[str, ModuleType]] = {}


def charm_modules(charm: str, *names: str) -> SimpleNamespace:
    """The named modules of ``charms/<charm>/src``, loaded without clashing with other charms."""
    loaded = _cache.setdefault(charm, {})
    missing = [n for n in names if n not in loaded]
    if missing:
        src = REPO / "charms" / charm / "src"
        local = {p.stem for p in src.glob("*.py")}
        saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n in local}
        sys.path.insert(0, str(src))
        try:
            # Siblings first, so a module imported later sees the same objects.
            for name in [*loaded, *missing]:
                sys.modules.setdefault(name, loaded.get(name) or importlib.import_module(name))
            for name in missing:
                loaded[name] = sys.modules[name]
        finally:
            sys.path.remove(str(src))
            for name in local:
                module = sys.modules.pop(name, None)
                if module is not None:
                    loaded.setdefault(name, module)
            sys.modules.update(saved)
    return SimpleNamespace(**{n: loaded[n] for n in names})
