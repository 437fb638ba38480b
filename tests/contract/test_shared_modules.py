"""Modules written once in ``common/`` and shipped as a copy by each charm that uses them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import sync_shared  # noqa: E402


@pytest.mark.parametrize("module", sorted(sync_shared.SHARED))
def test_every_charms_copy_of_a_shared_module_is_its_source_in_common(module: str):
    source = (REPO / "common" / module).read_text()
    for charm in sync_shared.SHARED[module]:
        copy = sync_shared.copy_path(charm, module)
        assert copy.read_text() == source, (
            f"{copy.relative_to(REPO)} differs from common/{module}: "
            "run python scripts/sync_shared.py"
        )


def test_every_module_of_common_is_shipped_and_every_charm_exists():
    modules = {p.name for p in (REPO / "common").glob("*.py")}
    assert modules == set(sync_shared.SHARED)
    for charms in sync_shared.SHARED.values():
        for charm in charms:
            assert (REPO / "charms" / charm / "charmcraft.yaml").is_file(), charm


def test_the_check_names_a_copy_that_drifted_and_the_sync_restores_it(tmp_path: Path):
    # On a copy of the repository's parts the script reads: the tree itself is left alone.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "sync_shared.py").write_text(
        (REPO / "scripts" / "sync_shared.py").read_text()
    )
    (tmp_path / "common").mkdir()
    for module, charms in sync_shared.SHARED.items():
        (tmp_path / "common" / module).write_text((REPO / "common" / module).read_text())
        for charm in charms:
            copy = sync_shared.copy_path(charm, module, tmp_path)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text((REPO / "common" / module).read_text())
    copy = tmp_path / "charms" / "cratedb" / "src" / "ownership.py"
    copy.write_text(copy.read_text() + "\n# drift\n")
    script = [sys.executable, str(tmp_path / "scripts" / "sync_shared.py")]

    checked = subprocess.run([*script, "--check"], capture_output=True, text=True, check=False)
    synced = subprocess.run(script, capture_output=True, text=True, check=False)

    assert (checked.returncode, checked.stdout.split()) == (1, ["charms/cratedb/src/ownership.py"])
    assert synced.returncode == 0
    assert copy.read_text() == (REPO / "common" / "ownership.py").read_text()
