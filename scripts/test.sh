#!/usr/bin/env bash
# Everything CI checks: set-up (with Debian's chromium and PostgreSQL for the tests that need
# them; the Milvus server comes from PyPI), lint, types,
# the docs build, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
.venv/bin/ruff check src tests bench scripts docs/_hooks
.venv/bin/mypy
# the user docs: strict build (broken links, missing pages fail); references generated from code
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir build/site
.venv/bin/python -m pytest "$@"
