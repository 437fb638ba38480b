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
import sys
import tempfile
import time
from pathlib import Path

from bench import hooks, report
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

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if args.only_hooks:
            results = json.loads((out / "results.json").read_text())
        else:
            results = run(pebble, weed, venv, Path(tmp), profile, log)
        log("hook cost and scale")
        results["hooks"] = hooks.measure(
            Path(tmp), reps=1 if args.smoke else 5, scale=(1, 10) if args.smoke else (1, 10, 100)
        )
    if not args.only_hooks:
        results["seconds"] = time.monotonic() - started
    path = report.write(results, out, "smoke" if args.smoke else "full")
    log(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
