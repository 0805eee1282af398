#!/usr/bin/env bash
# `make run`: the receiver on an embedded in-memory queue (no broker, no cluster).
# With PUSHSYNC_AMQP_URL set it publishes to that RabbitMQ instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${CARGO_TARGET_DIR:-$HOME/.cache/pushsync-target}/debug/pushsync-receiver"
export PUSHSYNC_LISTEN="${PUSHSYNC_LISTEN:-127.0.0.1:8080}"
export PUSHSYNC_LOG_FORMAT="${PUSHSYNC_LOG_FORMAT:-text}"
# A development secret for every forge; never use it anywhere real.
dev_secret="pushsync-dev-secret"
export PUSHSYNC_GITHUB_SECRET="${PUSHSYNC_GITHUB_SECRET:-$dev_secret}"
export PUSHSYNC_GITLAB_TOKEN="${PUSHSYNC_GITLAB_TOKEN:-$dev_secret}"
export PUSHSYNC_GITEA_SECRET="${PUSHSYNC_GITEA_SECRET:-$dev_secret}"
export PUSHSYNC_BITBUCKET_SECRET="${PUSHSYNC_BITBUCKET_SECRET:-$dev_secret}"
args=()
if [[ -z "${PUSHSYNC_AMQP_URL:-}" ]]; then
  args+=(--in-memory-queue)
  mode="an in-memory queue (events are logged, then dropped on exit)"
else
  mode="RabbitMQ at $(sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$PUSHSYNC_AMQP_URL")"
fi
cat <<EOT

  pushsync receiver on http://$PUSHSYNC_LISTEN, publishing to $mode.
  Webhook secret for every forge: $dev_secret

  Send a signed GitHub push (in another terminal):
      scripts/send-test-push.sh                      # github-push-commits.json
      scripts/send-test-push.sh gitlab-push-docs.json
  or by hand:
      body=testdata/webhooks/github-push-commits.json
      sig=\$(openssl dgst -sha256 -hmac $dev_secret < \$body | awk '{print \$2}')
      curl -i http://$PUSHSYNC_LISTEN/hooks/github -H 'Content-Type: application/json' \\
           -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: \$(uuidgen || date +%s%N)" \\
           -H "X-Hub-Signature-256: sha256=\$sig" --data-binary @\$body

  Health: curl http://$PUSHSYNC_LISTEN/readyz    Metrics: curl http://$PUSHSYNC_LISTEN/metrics
  Stop with Ctrl-C.

EOT
cd "$root"
exec "$bin" "${args[@]}"
