#!/usr/bin/env bash
# The test command: installs what is missing, then builds once and runs every test; then,
# when called without arguments, runs the real-server suites a second time against Valkey 8.1
# (scripts/valkey.sh): the redis adapter's and local backend's tests, the quick local-mode
# tests and the Kubernetes seed test. The slow scale-out and node-loss runs stay Redis-only
# to keep CI short.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?
if [ $# -eq 0 ]; then
  VALKEY="$PWD/target/tools/valkey/bin/valkey-server"
  ON_VALKEY='package(redis-operator-redis) | package(redis-operator-local)
    | (package(redis-operator) & (binary(rolling_replacement) | binary(kube_seed) | binary(kube_secrets)
       | (binary(local_cluster) & not test(/scaling_out_and_in|operator_killed_mid_migration/))))'
  echo "=== the real-server suites again, on $("$VALKEY" --version | cut -d' ' -f1-3)"
  REDIS_OPERATOR_TEST_SERVER="$VALKEY" KUBE_SANDBOX_REDIS_SERVER="$VALKEY" \
    cargo nextest run --workspace --no-fail-fast -E "$ON_VALKEY" || status=$?
fi
exit "$status"
