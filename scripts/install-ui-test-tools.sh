#!/usr/bin/env bash
# Install what the web UI's browser tests run (pushsync-server, tests/browser.rs):
# Debian's chromium (the browser; no browser is downloaded), and from npm
# oidc-provider 9.13.3 (a certified OpenID Provider, the tests' identity
# provider) and playwright-core 1.65.1 (drives the system Chromium), in
# $PUSHSYNC_TOOLS/ui (default $HOME/.cache/pushsync-tools/ui).
#
# Exact versions, no lifecycle scripts (playwright-core has none: it
# downloads nothing). Idempotent.
set -euo pipefail
tools="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}"
dir="$tools/ui"
provider_version="9.13.3"
playwright_version="1.65.1"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

if ! command -v chromium >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

installed() { # $1 package, $2 version
  local manifest="$dir/node_modules/$1/package.json"
  [[ -f "$manifest" ]] && grep -q "\"version\": *\"$2\"" "$manifest"
}
if installed oidc-provider "$provider_version" && installed playwright-core "$playwright_version"; then
  echo "oidc-provider $provider_version and playwright-core $playwright_version are installed in $dir" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "install-ui-test-tools: npm is required (Debian package npm)" >&2; exit 1; }
mkdir -p "$dir"
[[ -f "$dir/package.json" ]] || echo '{"name":"pushsync-ui-tests","private":true,"type":"module"}' > "$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact --loglevel=error \
  "oidc-provider@$provider_version" "playwright-core@$playwright_version" >&2)
echo "installed oidc-provider $provider_version and playwright-core $playwright_version in $dir; $(chromium --version)" >&2
