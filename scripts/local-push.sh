#!/usr/bin/env bash
# For `make run`: commit a change in the local sample repository and send the
# signed Gitea push webhook a forge would send for it.
# Usage: scripts/local-push.sh REPO GIT_URL RECEIVER_URL SECRET [FILE]
set -euo pipefail
repo=${1:?repository path}; url=${2:?git URL the Applications use}; base=${3:?receiver URL}; secret=${4:?webhook secret}
file=${5:-apps/guestbook/guestbook-ui-deployment.yaml}
cd "$repo"
before=$(git rev-parse HEAD)
# A visible change: bump an annotation with the current time.
if grep -q "pushsync.dev/local-push" "$file"; then
  sed -i "s|pushsync.dev/local-push: .*|pushsync.dev/local-push: \"$(date +%s)\"|" "$file"
else
  sed -i "0,/^metadata:/s|^metadata:|metadata:\n  annotations:\n    pushsync.dev/local-push: \"$(date +%s)\"|" "$file"
fi
git commit -qam "local push $(date +%s)"
after=$(git rev-parse HEAD)
files=$(git diff --name-only "$before" "$after" | sed 's/.*/"&"/' | paste -sd, -)
body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","commits":[{"id":"%s","added":[],"removed":[],"modified":[%s]}],"repository":{"full_name":"local/sample","clone_url":"%s","html_url":"%s"},"pusher":{"login":"%s"}}' \
  "$before" "$after" "$after" "$files" "$url" "$url" "$(whoami)")
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{print $2}')
curl -sS -i "$base/hooks/gitea" -H 'Content-Type: application/json' -H 'X-Gitea-Event: push' \
  -H "X-Gitea-Delivery: local-$after" -H "X-Gitea-Signature: $sig" --data-binary "$body"
echo
