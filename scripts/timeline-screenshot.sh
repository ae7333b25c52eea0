#!/usr/bin/env bash
# Regenerates docs/img/failover-timeline.png: the failover example trace drawn by
# `simulate replay --html`, photographed by headless Chromium (no network: every name
# resolves nowhere and Chromium's own background traffic is off).
# Usage: bash scripts/timeline-screenshot.sh [TRACE] [PNG]
set -euo pipefail
cd "$(dirname "$0")/.."
TRACE="${1:-examples/traces/failover.jsonl}"
PNG="${2:-docs/img/failover-timeline.png}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cargo build -q -p redis-operator
./target/debug/redis-operator simulate replay "$TRACE" --html "$WORK/page.html" >/dev/null
mkdir -p "$(dirname "$PNG")"
timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-default-apps --disable-extensions --proxy-server=127.0.0.1:9 \
  --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars --user-data-dir="$WORK/profile" \
  --window-size=1400,640 --screenshot="$PWD/$PNG" "file://$WORK/page.html#record=1" 2>/dev/null
echo "wrote $PNG"
