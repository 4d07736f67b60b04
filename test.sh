#!/usr/bin/env bash
# Run the whole test suite on a fresh or existing checkout: installs first (./setup.sh is
# idempotent), then pytest. Extra arguments go to pytest, e.g. ./test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --install-only
exec .venv/bin/python -m pytest "$@"
