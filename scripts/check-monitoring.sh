#!/usr/bin/env bash
# Check deploy/monitoring/: the rules parse and pass their promtool unit
# tests, the generated PrometheusRule and dashboard ConfigMap match their
# sources, the dashboard is JSON whose queries parse as PromQL, and every
# metric named is one README.md documents. Needs promtool and python3 only
# (kubectl, when present, also renders the kustomization). Exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=deploy/monitoring
for tool in promtool python3; do
  command -v "$tool" >/dev/null || { echo "check-monitoring: $tool is not installed (make deps)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
step() { # description, command...
  local what=$1; shift
  echo "== $what"
  if ! "$@"; then
    echo "FAILED: $what" >&2
    failed=1
  fi
}
step "promtool check rules" promtool check rules "$dir/rules.yaml"
step "promtool test rules" promtool test rules "$dir"/tests/*.yaml
step "generated manifests match their sources" bash scripts/monitoring-manifests.sh --check
step "dashboard is JSON" python3 -m json.tool "$dir/grafana-dashboard.json" /dev/null
step "metric names, runbooks, test coverage, dashboard shape" \
  python3 scripts/monitoring-lint.py --promql-out "$tmp/dashboard-queries.yaml"
step "dashboard queries parse as PromQL" promtool check rules "$tmp/dashboard-queries.yaml"
if command -v kubectl >/dev/null; then
  step "kubectl kustomize $dir" bash -c "kubectl kustomize '$dir' >/dev/null"
fi
if [[ $failed != 0 ]]; then
  echo "check-monitoring: FAILED" >&2
  exit 1
fi
echo "check-monitoring: ok"
