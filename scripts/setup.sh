#!/usr/bin/env bash
# Set up everything lookalike needs on a fresh machine: a virtual environment with the package,
# its ONNX runtime, and (for export/training/tests) the CPU-only torch wheel. Idempotent: reruns
# only reinstall when pyproject.toml changed.
# Usage: scripts/setup.sh [--browser | --all]   (--all: chromium + PostgreSQL for the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.lookalike-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
    # torch is pinned in the extras (torch==2.13.*) so pip takes the CPU-only wheel
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--browser" ] || [ "${1:-}" = "--all" ]; then
    bash scripts/install-browser.sh
fi
if [ "${1:-}" = "--all" ]; then
    sh scripts/install-servers.sh   # Debian's PostgreSQL for the tests that start one
fi
