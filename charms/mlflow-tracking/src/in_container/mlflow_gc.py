"""Run ``mlflow gc`` with the charm's settings: once (the ``gc`` action) or on a schedule.

Pushed by the charm to the workload container and run with the image's own
Python (standard library only here; MLflow is imported by the child).

    python3 mlflow_gc.py --env-file FILE [--every SECONDS] -- [mlflow gc options]

The env file (written by the charm, mode 0600, in ``envfile``'s format and read
with its reader, pushed next to this file) holds the backend store URI, the S3
settings and the tracking server's login: they reach the child through its
environment, never its argv, so no password shows in a process list. The
values from the file win over inherited ones (an inherited ``AWS_CA_BUNDLE``,
for example). With ``--every`` the
runner sleeps first, then collects, forever; the file is read again before
each run, so a rotated password needs no restart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import envfile

# The child: MLflow's own CLI, in process, with the store URI from the environment.
CHILD = (
    "import os, sys\n"
    "from mlflow.cli import cli\n"
    "cli.main(['gc', '--backend-store-uri', os.environ['MLFLOW_BACKEND_STORE_URI'],"
    " *sys.argv[1:]], prog_name='mlflow')\n"
)


def collect(env_file: str, gc_args: list[str]) -> int:
    """One ``mlflow gc``; its exit code."""
    env = {**os.environ, **envfile.read(env_file)}
    started = time.monotonic()
    # argv: this Python, the fixed CHILD, and the charm's own gc options.
    done = subprocess.run([sys.executable, "-c", CHILD, *gc_args], env=env, check=False)  # noqa: S603
    print(
        f"mlflow gc {' '.join(gc_args)}: exit {done.returncode} "
        f"after {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return done.returncode


def main(argv: list[str]) -> int:
    """Parse ``argv``; collect once, or every ``--every`` seconds."""
    if "--" in argv:
        split = argv.index("--")
        own, gc_args = argv[:split], argv[split + 1 :]
    else:
        own, gc_args = argv, []
    parser = argparse.ArgumentParser(prog="mlflow_gc.py")
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--every", type=float, default=0.0)
    args = parser.parse_args(own)
    if args.every <= 0:
        return collect(args.env_file, gc_args)
    while True:
        time.sleep(args.every)
        collect(args.env_file, gc_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
