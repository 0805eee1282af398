#!/usr/bin/env bash
# Dependency direction (ARCHITECTURE.md, "Boundaries"): fail when a crate
# reaches something it must never link.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
forbid() { # crate, then the packages it must not depend on (normal deps only)
  local crate=$1; shift
  local tree
  tree=$(cargo tree --locked -e normal -p "$crate" --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  for banned in "$@"; do
    if grep -qx "$banned" <<<"$tree"; then
      echo "dependency rule broken: $crate depends on $banned" >&2
      fail=1
    fi
  done
}
# proto describes data: no runtime, no broker, no HTTP, no Kubernetes client.
forbid pushsync-proto tokio lapin actix-web kube k8s-openapi reqwest git2 pushsync-broker
# The internet-facing receiver holds no cluster credentials and no test code.
forbid pushsync-receiver kube k8s-openapi git2 pushsync-worker pushsync-testkit pushsync-sandbox pushsync-api
# The worker never links the receiver or test support (actix-web serves its
# /metrics, /healthz and /readyz).
forbid pushsync-worker pushsync-receiver pushsync-testkit pushsync-sandbox
# Start-up shared by both binaries: nothing the receiver must not link.
forbid pushsync-service kube k8s-openapi git2 lapin actix-web pushsync-broker
forbid pushsync-broker pushsync-receiver pushsync-worker pushsync-testkit
# The Application types describe a resource: no client, runtime or broker.
forbid pushsync-api kube-client tokio lapin actix-web pushsync-proto
forbid pushsync-server pushsync-receiver pushsync-worker pushsync-testkit pushsync-sandbox lapin git2 pushsync-broker
exit $fail
