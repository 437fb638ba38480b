#!/usr/bin/env bash
# The one test command: sets up everything it needs, then lints and runs every suite.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh unit       # lint + unit tests only (fast)
#
# Needs: Python 3.11+, a Go toolchain (for Pebble), network access to PyPI,
# the Go module proxy and Debian's archive. Under CI=true a missing Pebble,
# weed, MLflow, PostgreSQL, nginx or Chromium fails the run.
#
# Every step runs even when an earlier one failed, so one run shows every
# failure. The last line printed is the count across every pytest process:
# "N passed, M failed, K skipped" (a failed lint step, a suite that collected
# nothing or a failed setup counts as one failure each).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scope="${1:-all}"

started_at=$SECONDS
RESULTS="$(mktemp -d "${TMPDIR:-/tmp}/test-results.XXXXXX")"
: > "$RESULTS/steps.failed"
current_step="setup"
failed=0

finish() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        # Stopped by an unexpected error (set -e): name the step it happened in.
        echo "$current_step (stopped the run, exit $rc)" >> "$RESULTS/steps.failed"
    fi
    echo "test command: $(((SECONDS - started_at) / 60))m$(((SECONDS - started_at) % 60))s"
    "${PYTHON:-python3}" scripts/summarize.py "$RESULTS" || rc=1
    [ "$failed" -eq 0 ] || rc=1
    exit "$rc"
}
trap finish EXIT

step() {
    current_step="$*"
    printf '\n== %s == (at %dm%02ds)\n' "$*" $(((SECONDS - started_at) / 60)) $(((SECONDS - started_at) % 60))
}

# check NAME CMD...: run CMD; on failure record NAME and carry on.
check() {
    local name="$1"; shift
    if ! "$@"; then
        echo "$name" >> "$RESULTS/steps.failed"
        failed=1
    fi
}

# run_pytest NAME PYTHON ARGS...: one pytest process, its results in RESULTS/NAME.xml.
run_pytest() {
    local name="$1" python="$2"; shift 2
    local rc=0
    "$python" -m pytest --junitxml="$RESULTS/$name.xml" -o junit_family=xunit1 "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        # No tests collected: a suite that silently vanished is a failure, never a pass.
        echo "pytest collected no tests: $name" >&2
        echo "$name: pytest collected no tests" >> "$RESULTS/steps.failed"
    fi
    return "$rc"
}

# shellcheck source=scripts/setup.sh
source scripts/setup.sh

step "lint: ruff format"
check "ruff format" "$VENV/bin/ruff" format --check .
step "lint: ruff check"
check "ruff check" "$VENV/bin/ruff" check .
step "lint: codespell"
check "codespell" "$VENV/bin/codespell"
step "lint: mypy"
for charm in charms/*/; do
    check "mypy $charm" bash -c "cd '$charm' && '$VENV/bin/mypy' src tests"
    # The files pushed into the container import each other by bare name there:
    # checked again from their own folder, where those names resolve.
    if [ -d "$charm/src/in_container" ]; then
        check "mypy $charm/src/in_container" bash -c "cd '$charm/src/in_container' && \
            '$VENV/bin/mypy' --python-version 3.11 --check-untyped-defs --ignore-missing-imports --cache-dir=/dev/null ."
    fi
done
check "mypy tests stack bench scripts" "$VENV/bin/mypy" tests stack bench scripts

# Each charm's unit tests in their own pytest process (three modules are all
# called "charm"), the three side by side.
logs="$(mktemp -d)"
pids=()
for charm in charms/*/; do
    name="$(basename "$charm")"
    (cd "$charm" && run_pytest "unit-$name" "$VENV/bin/python" tests/unit -p no:cacheprovider) \
        > "$logs/$name.log" 2>&1 &
    pids+=("$!:$name")
done
for entry in "${pids[@]}"; do
    pid="${entry%%:*}"; name="${entry#*:}"
    step "unit tests: charms/$name"
    wait "$pid" || failed=1
    cat "$logs/$name.log"
done

if [ "$scope" = "unit" ]; then
    exit 0
fi

step "contract tests (the charms chained) and bundle/docs checks"
run_pytest contract "$VENV/bin/python" tests/contract || failed=1

step "workload tests (real Pebble, real programs; one module per worker)"
# In file order: a module's tests share its servers (module fixtures), which a
# shuffled order would start and stop again. Unit and contract tests run shuffled
# (pytest-randomly; the seed is printed, --randomly-seed=N repeats an order).
run_pytest workload "$VENV/bin/python" tests/workload -n 2 --dist loadfile -p no:randomly || failed=1

step "benchmark smoke run (the same code as python -m bench, tiny sizes)"
check "benchmark smoke run" "$VENV/bin/python" -m bench --smoke

step "Juju integration tests (pytest-operator; skipped without a controller)"
# Its own venv has no ops.testing: the secret-audit plugin of the other suites stays out.
run_pytest integration "$IT_VENV/bin/python" tests/integration -o asyncio_mode=auto \
    -o addopts="-ra --strict-markers" -p no:cacheprovider || failed=1
