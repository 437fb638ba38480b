"""The artifact benchmark again, on a loopback limited to a fixed rate.

On an unlimited loopback the proxy's extra hop costs little; on a real pod
network it does. ``python -m bench --shaped 400mbit`` re-runs itself in a new
network namespace (``unshare --net``, so it needs root) whose loopback goes
through a token-bucket filter (``tc qdisc ... tbf``). Every byte of every hop
(client -> MLflow -> SeaweedFS and back) shares that one link, as pods on one
node share their network. This kernel has no ``netem``, so the link is
rate-limited, not delayed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import FULL, Bench

INSIDE = "BENCH_SHAPED_INSIDE"
SIZES_MB = (64, 256)


def unavailable() -> str | None:
    """Why a shaped run cannot happen here, or None."""
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create a network namespace and shape its loopback"
    missing = [tool for tool in ("unshare", "ip", "tc") if not shutil.which(tool)]
    return f"needs {', '.join(missing)} (iproute2, util-linux)" if missing else None


def namespaced(rate: str, argv: list[str]) -> list[str]:
    """ARGV run in a fresh network namespace whose loopback is limited to RATE."""
    script = (
        "set -e; ip link set lo up; "
        f"tc qdisc add dev lo root tbf rate {rate} burst 1mb latency 200ms; "
        'exec "$@"'
    )
    return ["unshare", "--net", "sh", "-c", script, "shaped", *argv]


def measure(
    pebble: str, weed: str, venv: Path, root: Path, rate: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Artifacts up and down, every variant, on the shaped loopback."""
    bench = Bench(pebble, weed, venv, root, dataclasses.replace(FULL, sizes_mb=SIZES_MB))
    try:
        log(f"shaped loopback ({rate}): SeaweedFS")
        seaweed = bench.seaweedfs()
        log("shaped loopback: charm proxied / direct / upstream / raw S3")
        bench.measure_artifacts(seaweed)
    finally:
        bench.stop()
    return {"rate": rate, "artifacts": bench.results["artifacts"]}
