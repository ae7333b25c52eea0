#!/usr/bin/env bash
# The test command: installs what is missing, then builds once and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo nextest run --workspace --no-fail-fast "$@"
