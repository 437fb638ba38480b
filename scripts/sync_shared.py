"""Copy each module of ``common/`` into the charms that ship it (see common/README.md).

python scripts/sync_shared.py           # copy
python scripts/sync_shared.py --check   # list the copies that differ; exit 1 if any
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALL = ("mlflow-tracking", "cratedb", "seaweedfs")
# Module of common/ -> the charms that ship a copy; where in a charm's src/ it goes.
SHARED: dict[str, tuple[str, ...]] = {
    "observability.py": ALL,
    "log_forwarding.py": ALL,
    "ownership.py": ("seaweedfs", "cratedb"),
    "untrusted.py": ("mlflow-tracking", "cratedb"),
}
# Relation endpoints live in the relations package.
FOLDER = {"observability.py": "relations", "log_forwarding.py": "relations"}


def copy_path(charm: str, module: str, repo: Path = REPO) -> Path:
    """Where ``charm`` keeps its copy of ``module``."""
    return repo / "charms" / charm / "src" / FOLDER.get(module, "") / module


def differing() -> list[Path]:
    """The charms' copies whose text is not their source's."""
    return [
        copy_path(charm, module)
        for module, charms in SHARED.items()
        for charm in charms
        if not copy_path(charm, module).is_file()
        or copy_path(charm, module).read_text() != (REPO / "common" / module).read_text()
    ]


def main(argv: list[str]) -> int:
    """Copy (or with ``--check`` only list) what differs; the exit code."""
    stale = differing()
    for path in stale:
        print(path.relative_to(REPO))
    if argv[1:] == ["--check"]:
        return 1 if stale else 0
    for path in stale:
        path.write_text((REPO / "common" / path.name).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
