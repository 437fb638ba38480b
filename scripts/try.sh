#!/usr/bin/env bash
# Try it locally, without Juju or Kubernetes: SeaweedFS + MLflow under a real
# Pebble, configured by the charms' own builders.
#
#   bash scripts/try.sh                                        # until Ctrl-C
#   bash scripts/try.sh --run 'python examples/quickstart.py'  # run one example, then stop
#   bash scripts/try.sh --direct                               # clients use S3 directly
#   CRATEDB_URL=http://127.0.0.1:4200 bash scripts/try.sh      # metadata in a CrateDB you run
#   POSTGRESQL_URL=postgresql://user:pw@127.0.0.1:5432/mlflow bash scripts/try.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
exec "$VENV/bin/python" -m stack "$@"
