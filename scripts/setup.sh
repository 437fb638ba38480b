#!/usr/bin/env bash
# Sourced by scripts/test.sh: builds .venv and the Pebble binary, idempotently.
# Exports VENV, PEBBLE_BIN and WEED_BIN for the test suites.
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

if [ "${CI:-}" = "true" ]; then
    [ -x "$PEBBLE_BIN" ] || { echo "CI: Pebble missing at $PEBBLE_BIN" >&2; exit 1; }
    [ -x "$WEED_BIN" ] || { echo "CI: weed missing at $WEED_BIN" >&2; exit 1; }
fi

export VENV PEBBLE_BIN WEED_BIN
