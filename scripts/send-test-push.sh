#!/usr/bin/env bash
# Send one of testdata/webhooks/*.json to a running receiver, signed the way its
# forge signs it. Usage: scripts/send-test-push.sh [FIXTURE] [BASE_URL]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fixture="${1:-github-push-commits.json}"
base="${2:-http://${PUSHSYNC_LISTEN:-127.0.0.1:8080}}"
secret="${PUSHSYNC_DEV_SECRET:-pushsync-dev-secret}"
body="$root/testdata/webhooks/$fixture"
[[ -f "$body" ]] || { echo "no such fixture: $body" >&2; exit 64; }
id="test-$(date +%s%N)"
hmac() { openssl dgst -sha256 -hmac "$secret" < "$body" | awk '{print $2}'; }
case "$fixture" in
  github-ping*) args=(/hooks/github -H 'X-GitHub-Event: ping' -H "X-GitHub-Delivery: $id" -H "X-Hub-Signature-256: sha256=$(hmac)") ;;
  github-*) args=(/hooks/github -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $id" -H "X-Hub-Signature-256: sha256=$(hmac)") ;;
  gitlab-system-*) args=(/hooks/gitlab -H 'X-Gitlab-Event: System Hook' -H "Idempotency-Key: $id" -H "X-Gitlab-Token: $secret") ;;
  gitlab-tag-*) args=(/hooks/gitlab -H 'X-Gitlab-Event: Tag Push Hook' -H "Idempotency-Key: $id" -H "X-Gitlab-Token: $secret") ;;
  gitlab-*) args=(/hooks/gitlab -H 'X-Gitlab-Event: Push Hook' -H "Idempotency-Key: $id" -H "X-Gitlab-Token: $secret") ;;
  gitea-*) args=(/hooks/gitea -H 'X-Gitea-Event: push' -H "X-Gitea-Delivery: $id" -H "X-Gitea-Signature: $(hmac)") ;;
  gogs-*) args=(/hooks/gitea -H 'X-Gogs-Event: push' -H "X-Gogs-Delivery: $id" -H "X-Gogs-Signature: $(hmac)") ;;
  bitbucket-cloud-*) args=(/hooks/bitbucket -H 'X-Event-Key: repo:push' -H "X-Request-UUID: $id" -H "X-Hub-Signature: sha256=$(hmac)") ;;
  bitbucket-server-*) args=(/hooks/bitbucket -H 'X-Event-Key: repo:refs_changed' -H "X-Request-Id: $id" -H "X-Hub-Signature: sha256=$(hmac)") ;;
  *) echo "don't know which forge sends $fixture" >&2; exit 64 ;;
esac
path="${args[0]}"
curl -sS -i "$base$path" -H 'Content-Type: application/json' "${args[@]:1}" --data-binary "@$body"
echo
