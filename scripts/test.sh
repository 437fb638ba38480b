#!/usr/bin/env bash
# The one test command: sets up everything it needs, then lints and runs every suite.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh unit       # lint + unit tests only (fast)
#
# Needs: Python 3.11+, a Go toolchain (for Pebble), network access to PyPI and
# the Go module proxy. Under CI=true a missing Pebble or weed fails the run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scope="${1:-all}"

# shellcheck source=scripts/setup.sh
source scripts/setup.sh

step() { printf '\n== %s ==\n' "$*"; }

run_pytest() {
    # pytest exit code 5 means "no tests collected": a suite that silently
    # vanished is a failure here, never a pass.
    local rc=0
    "$VENV/bin/python" -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests for: $*" >&2
    fi
    return "$rc"
}

step "lint: ruff format"
"$VENV/bin/ruff" format --check .
step "lint: ruff check"
"$VENV/bin/ruff" check .
step "lint: codespell"
"$VENV/bin/codespell"
step "lint: mypy"
for charm in charms/*/; do
    (cd "$charm" && "$VENV/bin/mypy" src tests)
done
"$VENV/bin/mypy" tests stack bench

# Each charm's unit tests in their own pytest process (three modules are all
# called "charm"), the three side by side.
logs="$(mktemp -d)"
pids=()
for charm in charms/*/; do
    name="$(basename "$charm")"
    (cd "$charm" && run_pytest tests/unit -p no:cacheprovider) > "$logs/$name.log" 2>&1 &
    pids+=("$!:$name")
done
failed=0
for entry in "${pids[@]}"; do
    pid="${entry%%:*}"; name="${entry#*:}"
    step "unit tests: charms/$name"
    if ! wait "$pid"; then failed=1; fi
    cat "$logs/$name.log"
done
[ "$failed" -eq 0 ] || { echo "unit tests failed" >&2; exit 1; }

if [ "$scope" = "unit" ]; then
    exit 0
fi

step "contract tests (the charms chained) and bundle/docs checks"
run_pytest tests/contract

step "workload tests (real Pebble, real programs; one module per worker)"
run_pytest tests/workload -n 2 --dist loadfile

step "benchmark smoke run (the same code as python -m bench, tiny sizes)"
"$VENV/bin/python" -m bench --smoke

step "Juju integration tests (pytest-operator; skipped without a controller)"
rc=0
# Its own venv has no ops.testing: the secret-audit plugin of the other suites stays out.
"$IT_VENV/bin/python" -m pytest tests/integration -o asyncio_mode=auto -o addopts="-ra --strict-markers" -p no:cacheprovider || rc=$?
[ "$rc" -eq 5 ] && echo "pytest collected no integration tests" >&2
[ "$rc" -eq 0 ] || exit "$rc"
