#!/usr/bin/env bash
# The demo on the embedded default: set up, export the model, ingest the bundled sample catalog,
# print look-alikes, then serve the web page and API (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lookalike demo "$@"
