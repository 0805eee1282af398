#!/usr/bin/env bash
# Install the validating proxy the forge tests run (pushsync-forge): Stoplight
# prism 5.14.2 (the newest release that supports Node 18/20) and GitHub's
# official REST description as published in @octokit/openapi 23.0.2 (MIT), in
# $PUSHSYNC_TOOLS/prism (default $HOME/.cache/pushsync-tools/prism).
#
# Exact versions, no lifecycle scripts. Idempotent: nothing is downloaded when
# both packages are already installed at these versions.
set -euo pipefail
tools="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}"
dir="$tools/prism"
prism_version="5.14.2"
openapi_version="23.0.2"

installed() { # $1 package, $2 version
  local manifest="$dir/node_modules/$1/package.json"
  [[ -f "$manifest" ]] && grep -q "\"version\": *\"$2\"" "$manifest"
}

if installed @stoplight/prism-cli "$prism_version" && installed @octokit/openapi "$openapi_version" \
  && [[ -x "$dir/node_modules/.bin/prism" ]]; then
  echo "prism $prism_version and @octokit/openapi $openapi_version are installed in $dir" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "install-prism: npm is required (Debian package npm)" >&2; exit 1; }
mkdir -p "$dir"
[[ -f "$dir/package.json" ]] || echo '{"name":"pushsync-prism","private":true}' > "$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact --loglevel=error \
  "@stoplight/prism-cli@$prism_version" "@octokit/openapi@$openapi_version" >&2)
echo "installed prism $("$dir/node_modules/.bin/prism" --version) and @octokit/openapi $openapi_version in $dir" >&2
