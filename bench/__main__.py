"""The benchmark command: ``python -m bench [--smoke] [--out DIR]`` (after scripts/setup.sh).

The full run writes docs/benchmarks/ (report.md, results.json, PNG charts);
``--smoke`` runs a tiny version of the same code (the test command does, so
the benchmark cannot rot) and writes to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import hooks, report, shaped
from bench.run import FULL, SMOKE, run

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run, report, print the report's path."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument(
        "--only-hooks",
        action="store_true",
        help="re-measure the hook costs only, into the existing results.json of --out",
    )
    parser.add_argument(
        "--only-tracking",
        action="store_true",
        help="re-measure the tracking API (CrateDB too, where CRATEDB_HOME is given) into "
        "the existing results.json of --out",
    )
    parser.add_argument(
        "--only-cluster",
        action="store_true",
        help="re-measure SeaweedFS 1 unit vs 3 units into the existing results.json of --out",
    )
    parser.add_argument(
        "--shaped",
        metavar="RATE",
        help="re-measure artifacts on a loopback limited to RATE (tc syntax, e.g. 400mbit), "
        "into the existing results.json of --out; needs root",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report directory (default docs/benchmarks, or a temp dir with --smoke)",
    )
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="bench-smoke-"))
        if args.smoke
        else REPO / "docs" / "benchmarks"
    )
    pebble = os.environ.get("PEBBLE_BIN") or shutil.which("pebble")
    weed = os.environ.get("WEED_BIN") or shutil.which("weed")
    venv = Path(os.environ.get("MLFLOW_VENV", ""))
    if not (pebble and weed and (venv / "bin" / "mlflow").exists()):
        print(
            "needs Pebble, weed and the MLflow venv: run `source scripts/setup.sh` first",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)

    if args.shaped:
        return _shaped(args.shaped, out, pebble, weed, venv, log)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if args.only_hooks:
            results = json.loads((out / "results.json").read_text())
        elif args.only_cluster:
            results = json.loads((out / "results.json").read_text())
            results["cluster"] = run(
                pebble, weed, venv, Path(tmp), profile, log, cluster_only=True
            )["cluster"]
        elif args.only_tracking:
            results = json.loads((out / "results.json").read_text())
            fresh = run(pebble, weed, venv, Path(tmp), profile, log, tracking_only=True)
            # Everything the tracking run measures: the API, CrateDB's profile,
            # the servers' start-up.
            for key in ("tracking", "cratedb_profile", "startup_mlflow"):
                if key in fresh:
                    results[key] = fresh[key]
                else:
                    results.pop(key, None)
        else:
            results = run(pebble, weed, venv, Path(tmp), profile, log)
        if not (args.only_tracking or args.only_cluster):
            log("hook cost and scale")
            results["hooks"] = hooks.measure(
                Path(tmp),
                reps=1 if args.smoke else 5,
                scale=(1, 10) if args.smoke else (1, 10, 100),
            )
    if not (args.only_hooks or args.only_tracking or args.only_cluster):
        results["seconds"] = time.monotonic() - started
    path = report.write(results, out, "smoke" if args.smoke else "full")
    log(f"report: {path}")
    return 0


def _shaped(
    rate: str, out: Path, pebble: str, weed: str, venv: Path, log: Callable[[str], None]
) -> int:
    """Outside: re-run this command in a shaped namespace. Inside: measure and report."""
    if not (out / "results.json").exists():
        print(f"--shaped adds to a full run's results: no {out / 'results.json'}", file=sys.stderr)
        return 2
    if os.environ.get(shaped.INSIDE) != rate:
        why = shaped.unavailable()
        if why:
            print(f"--shaped {why}", file=sys.stderr)
            return 2
        argv = [sys.executable, "-m", "bench", "--shaped", rate, "--out", str(out)]
        env = {**os.environ, shaped.INSIDE: rate}
        return subprocess.run(shaped.namespaced(rate, argv), env=env, check=False).returncode
    results = json.loads((out / "results.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-shaped-") as tmp:
        results["shaped"] = shaped.measure(pebble, weed, venv, Path(tmp), rate, log)
    path = report.write(results, out, "full")
    log(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
