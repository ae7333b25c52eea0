#!/usr/bin/env bash
# The main job: a local Redis Cluster (3 masters x 1 replica, the seed's example manifest)
# of redis-server processes on 127.0.0.1:10000-10005, reconciled in the foreground, with the
# HTTP API on 127.0.0.1:9090. Installs redis-server when missing. Extra arguments go to
# `local up` (e.g. -f another.yaml replaces the manifest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p redis-operator
manifest=examples/seed-cluster.yaml
for a in "$@"; do [ "$a" = "-f" ] && manifest=""; done
exec ./target/release/redis-operator local up ${manifest:+-f "$manifest"} "$@"
