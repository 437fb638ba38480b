"""Try it: ``python -m stack`` (after ``source scripts/setup.sh``; see README).

Starts the local stack, prints the notebook environment as shell exports,
then either runs ``--run COMMAND`` with that environment and stops, or waits
until Ctrl-C (or ``--duration`` seconds) and stops cleanly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading

from stack.local import LocalStack


def main(argv: list[str] | None = None) -> int:
    """Run the local stack; the exit code is the --run command's, else 0."""
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("--direct", action="store_true", help="clients talk to S3 themselves")
    parser.add_argument("--cratedb-url", default=os.environ.get("CRATEDB_URL", ""))
    parser.add_argument("--postgresql-url", default=os.environ.get("POSTGRESQL_URL", ""))
    parser.add_argument(
        "--cratedb-home",
        default=os.environ.get("CRATEDB_HOME", ""),
        help="an unpacked CrateDB: run it under Pebble from the cratedb charm's layer",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="an open server, as with the charm's auth=false (default: auth on)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the state directory (logs, data) after stopping"
    )
    parser.add_argument(
        "--run", help="run this shell command with the notebook environment, then stop"
    )
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    args = parser.parse_args(argv)

    what = "SeaweedFS, CrateDB and MLflow" if args.cratedb_home else "SeaweedFS and MLflow"
    print(f"starting {what} under Pebble (the charms' own layers)...", flush=True)
    local = LocalStack.start(
        serve_artifacts=not args.direct,
        cratedb_url=args.cratedb_url,
        postgresql_url=args.postgresql_url,
        cratedb_home=args.cratedb_home,
        auth=False if args.no_auth else None,
    )
    try:
        store = local.mlflow.settings.store.kind.label
        print(f"MLflow UI and API: {local.mlflow.url}  (metadata: {store})")
        print(f"SeaweedFS S3:      {local.seaweed.endpoint}  (bucket: mlflow)")
        kept = "kept after stopping" if args.keep else "removed when stopped; --keep keeps it"
        print(f"state directory:   {local.root}  ({kept})")
        if local.mlflow.settings.auth is not None:
            user, password = local.mlflow.admin
            print(f"MLflow admin:      {user} / {password}  (what get-admin-password prints)")
        print("# the notebook environment (what the pod default injects):")
        env = local.notebook_env()
        for key, value in sorted(env.items()):
            print(f"export {key}={shlex.quote(value)}")
        sys.stdout.flush()
        if args.run:
            run_env = {**os.environ, **local.s3_env(), **env}
            run_env["PATH"] = os.pathsep.join([str(local.venv / "bin"), run_env.get("PATH", "")])
            return subprocess.run(args.run, shell=True, env=run_env, check=False).returncode  # noqa: S602 (the user's own command)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print("running; Ctrl-C stops everything", flush=True)
        stop.wait(args.duration or None)
        return 0
    finally:
        print("stopping...", flush=True)
        local.stop(keep=args.keep)
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
