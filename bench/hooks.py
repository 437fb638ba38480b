"""Hook cost: each charm's reconcile in a fresh process, beside a do-nothing ops charm."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("hook_runner.py")
CHARMS = ("seaweedfs", "cratedb", "mlflow-tracking")

NOTHING_META = """name: nothing
type: charm
summary: A charm that does nothing, to measure what ops itself costs.
description: The baseline of the hook-cost benchmark.
"""
NOTHING_CHARM = '''"""A charm that observes config-changed and does nothing."""

import ops


class NothingCharm(ops.CharmBase):
    """Does nothing."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._nothing)
        framework.observe(self.on.update_status, self._nothing)

    def _nothing(self, _event: ops.EventBase) -> None:
        pass
'''


def nothing_charm(root: Path) -> Path:
    """Write the do-nothing charm; return its directory."""
    charm = root / "nothing"
    (charm / "src").mkdir(parents=True, exist_ok=True)
    (charm / "charmcraft.yaml").write_text(NOTHING_META)
    (charm / "src" / "charm.py").write_text(NOTHING_CHARM)
    return charm


def _once(charm_dir: Path, clients: int, *flags: str) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(charm_dir), str(clients), *flags],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hook runner failed for {charm_dir.name}:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    return result


def measure(root: Path, reps: int, scale: tuple[int, ...]) -> dict[str, Any]:
    """Per charm: fresh-process cost with one client (reps), and reconcile time vs clients."""
    dirs = {"nothing": nothing_charm(root), **{c: REPO / "charms" / c for c in CHARMS}}
    results: dict[str, Any] = {"one_client": {}, "scale": {}}
    for name, path in dirs.items():
        results["one_client"][name] = [_once(path, 1) for _ in range(reps)]
    # The bundle's mlflow-tracking has a database related: it imports dpcharmlibs.
    results["one_client"]["mlflow-tracking (cratedb related)"] = [
        _once(dirs["mlflow-tracking"], 1, "--with-database") for _ in range(reps)
    ]
    for name in CHARMS:
        for clients in scale:
            results["scale"].setdefault(name, {})[clients] = _once(dirs[name], clients)
    return results
