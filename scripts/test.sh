#!/usr/bin/env bash
# Everything CI checks: set-up (with Debian's chromium for the browser tests), lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
.venv/bin/ruff check src tests bench scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
