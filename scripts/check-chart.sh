#!/usr/bin/env bash
# charts/pushsync must not drift from deploy/. Checks, in order:
#   1. helm lint --strict (defaults and every charts/pushsync/ci/*.yaml);
#   2. helm template with default values equals `kubectl kustomize deploy/`
#      object by object, and with worker.autoscaling.keda.enabled=true equals
#      deploy/ plus deploy/autoscaling/ (the Deployment then leaves `replicas`
#      to the autoscaler); the only differences allowed are the labels Helm
#      conventionally adds (IGNORED_LABELS below) and the Namespace's
#      helm.sh/resource-policy annotation;
#      With monitoring.{serviceMonitors,prometheusRule,dashboard}.enabled
#      (each alone, and all three) it equals deploy/ plus the matching objects
#      of `kubectl kustomize deploy/monitoring/`; the default render holds
#      none of them;
#      deploy/ grants the server Applications and Events in the install
#      namespace only (a Role), cluster-wide only reads of the tree's kinds;
#   3. each charts/pushsync/ci/*.yaml renders with the effects it asks for
#      (among them the server's Roles per watchNamespaces entry, or its
#      ClusterRole <fullname>-server-applications with ["*"]);
#   4. charts/pushsync/crds/ equals deploy/crds/, and charts/pushsync/files/
#      the sources in deploy/monitoring/ the chart renders, byte for byte;
#   5. the schema refuses typos in values (e.g. --set worker.replica=2) and
#      the templates refuse contradictory values.
# Needs helm (4.x; PATH gets $PUSHSYNC_TOOLS/bin), kubectl, python3, and a
# YAML reader: yq (the Python jq wrapper or mikefarah's) or else PyYAML.
# Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="${PUSHSYNC_TOOLS:-$HOME/.cache/pushsync-tools}/bin:$PATH"
chart=charts/pushsync
release=pushsync
namespace=pushsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }

for tool in helm kubectl python3; do
  command -v "$tool" >/dev/null || { echo "check-chart: $tool is required" >&2; exit 2; }
done
helm version --short | grep -q '^v4\.' || { echo "check-chart: helm 4.x is required (scripts/install-helm.sh)" >&2; exit 2; }

# A YAML stream on stdin to one JSON document per line. (Captured, not
# piped into grep -q: a reader killed by SIGPIPE would fail under pipefail.)
yq_about=
if command -v yq >/dev/null; then
  yq_about="$(yq --version 2>&1 || true) $(yq --help 2>&1 || true)"
fi
if [[ "$yq_about" == *mikefarah* ]]; then
  reader="yq (mikefarah)"
  to_jsonl() { yq -o=json -I=0 '.'; }
elif [[ "$yq_about" == *"jq wrapper"* ]]; then
  reader="yq (Python jq wrapper)"
  to_jsonl() { yq -c '.'; }
elif python3 -c 'import yaml' 2>/dev/null; then
  reader="PyYAML"
  to_jsonl() { python3 -c 'import json, sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    print(json.dumps(doc))'; }
else
  echo "check-chart: no YAML reader: install yq (apt-get install yq) or PyYAML (apt-get install python3-yaml)" >&2
  exit 2
fi
echo "YAML reader: $reader"

cat >"$work/compare.py" <<'PY'
"""Object-by-object comparison of rendered manifests (JSON lines)."""
import difflib
import json
import sys

# Labels Helm charts conventionally add (Helm best practices, "Labels and
# Annotations"); they identify the release and chart version and change
# nothing the API server or the workloads do. The chart sets them on object
# metadata only, never on selectors or pod templates, and only there are they
# ignored.
IGNORED_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
# Helm-only annotations, per kind: Helm reads them, the API server ignores them.
IGNORED_ANNOTATIONS = {"Namespace": {"helm.sh/resource-policy"}}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip() and line.strip() != "null"]


def key(obj):
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace", ""), meta.get("name"))


def index(objs, where):
    out = {}
    for obj in objs:
        k = key(obj)
        if k in out:
            sys.exit(f"{where}: {k} appears twice")
        out[k] = obj
    return out


def strip(obj):
    obj = json.loads(json.dumps(obj))
    meta = obj.get("metadata", {})
    for field, ignored in (("labels", IGNORED_LABELS),
                           ("annotations", IGNORED_ANNOTATIONS.get(obj.get("kind"), set()))):
        values = meta.get(field)
        if values is None:
            continue
        for name in ignored:
            values.pop(name, None)
        if not values:
            del meta[field]
    return obj


def show(k):
    api, kind, ns, name = k
    return f"{kind} {ns + '/' if ns else ''}{name} ({api})"


def parity(base_path, chart_path, *options):
    base = index(load(base_path), "kustomize")
    chart = index(load(chart_path), "helm")
    autoscaled = "--worker-autoscaled" in options
    if autoscaled:
        # The autoscaler owns the count: the chart leaves `replicas` out.
        k = ("apps/v1", "Deployment", "pushsync", "pushsync-worker")
        if "replicas" in chart[k]["spec"]:
            print(f"  {show(k)}: spec.replicas is set although an autoscaler owns it")
            return 1
        base[k]["spec"].pop("replicas", None)
    bad = 0
    for k in sorted(base.keys() - chart.keys(), key=str):
        print(f"  missing from the chart: {show(k)}")
        bad += 1
    for k in sorted(chart.keys() - base.keys(), key=str):
        print(f"  only in the chart: {show(k)}")
        bad += 1
    for k in sorted(base.keys() & chart.keys(), key=str):
        if k[1] != "CustomResourceDefinition":
            labels = chart[k].get("metadata", {}).get("labels", {})
            missing = sorted(IGNORED_LABELS - labels.keys())
            if missing:
                print(f"  {show(k)}: lacks the Helm labels {missing}")
                bad += 1
        a = json.dumps(strip(base[k]), indent=2, sort_keys=True).splitlines()
        b = json.dumps(strip(chart[k]), indent=2, sort_keys=True).splitlines()
        if a != b:
            print(f"  differs: {show(k)}")
            for line in difflib.unified_diff(a, b, "kustomize", "helm", lineterm="", n=3):
                print("    " + line)
            bad += 1
    print(f"  {len(base)} objects compared")
    return 1 if bad else 0


# The objects of deploy/monitoring/ each monitoring.* switch renders.
MONITORING = {
    "serviceMonitors": {("v1", "Service"), ("monitoring.coreos.com/v1", "ServiceMonitor")},
    "prometheusRule": {("monitoring.coreos.com/v1", "PrometheusRule")},
    "dashboard": {("v1", "ConfigMap")},
}


def pick(path, switches):
    """Print the objects of a JSON-lines file that the switches render."""
    kinds = set().union(*(MONITORING[s] for s in switches.split(",")))
    for obj in load(path):
        if (obj.get("apiVersion"), obj.get("kind")) in kinds:
            print(json.dumps(obj))
    return 0


def absent(monitoring_path, chart_path):
    """None of deploy/monitoring's objects, nor any of their kinds, rendered."""
    unwanted = set(index(load(monitoring_path), "kustomize"))
    bad = 0
    for obj in load(chart_path):
        k = key(obj)
        labels = obj.get("metadata", {}).get("labels") or {}
        if k in unwanted or k[1] in ("ServiceMonitor", "PrometheusRule") or "grafana_dashboard" in labels:
            print(f"  rendered by default: {show(k)}")
            bad += 1
    print(f"  {len(unwanted)} objects of deploy/monitoring/ absent")
    return 1 if bad else 0


# Expectations of the ci values files: each returns a list of failures.
def find(objs, kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def container(objs, deployment):
    (d,) = find(objs, "Deployment", deployment)
    return d, d["spec"]["template"]["spec"]["containers"][0]


def env_of(c):
    names = [e["name"] for e in c["env"]]
    return names, {e["name"]: e for e in c["env"]}


# The server's RBAC: Applications (read, patch) and Events (read) only in the
# namespaces it shows; cluster-wide only reads of the resource tree's kinds.
SERVER_APP_RULES = [
    {"apiGroups": ["pushsync.dev"], "resources": ["applications"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
]
SERVER_TREE_KINDS = {
    ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"), ("apps", "daemonsets"),
    ("", "pods"), ("", "services"), ("batch", "jobs"), ("batch", "cronjobs"),
    ("discovery.k8s.io", "endpointslices"),
}


def server_rbac(objs, name, shown, release_ns="pushsync"):
    """`shown`: the namespaces the server shows, or "*" for all."""
    errors = []
    check = lambda ok, what: ok or errors.append(what)
    (cr,) = find(objs, "ClusterRole", name)
    granted = {(g, r) for rule in cr["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    check(granted == SERVER_TREE_KINDS, f"ClusterRole {name} grants {sorted(granted)}")
    check(all(set(rule["verbs"]) <= {"get", "list"} for rule in cr["rules"]),
          f"ClusterRole {name} is not read-only: {cr['rules']}")
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": release_ns}]
    (crb,) = find(objs, "ClusterRoleBinding", name)
    check(crb["roleRef"]["name"] == name and crb["subjects"] == subject, f"ClusterRoleBinding {name}")
    roles = {o["metadata"]["namespace"]: o for o in find(objs, "Role", name)}
    bindings = {o["metadata"]["namespace"]: o for o in find(objs, "RoleBinding", name)}
    apps_cr = find(objs, "ClusterRole", name + "-applications")
    apps_crb = find(objs, "ClusterRoleBinding", name + "-applications")
    if shown == "*":
        check(not roles and not bindings, f"Roles {sorted(roles)} although every namespace is shown")
        check(len(apps_cr) == 1 and apps_cr[0]["rules"] == SERVER_APP_RULES,
              f"ClusterRole {name}-applications with the Application and Event rules")
        check(len(apps_crb) == 1 and apps_crb[0]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name + "-applications"}
              and apps_crb[0]["subjects"] == subject, f"ClusterRoleBinding {name}-applications")
    else:
        check(not apps_cr and not apps_crb, f"ClusterRole {name}-applications although namespaces are listed")
        check(sorted(roles) == sorted(shown), f"server Roles in {sorted(roles)}, shown: {sorted(shown)}")
        check(sorted(bindings) == sorted(shown), f"server RoleBindings in {sorted(bindings)}, shown: {sorted(shown)}")
        for ns, role in roles.items():
            check(role["rules"] == SERVER_APP_RULES, f"Role {ns}/{name} rules {role['rules']}")
        for ns, rb in bindings.items():
            check(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
                  and rb["subjects"] == subject, f"RoleBinding {ns}/{name}")
    bound = sorted((o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs
                   if o["kind"] in ("ClusterRoleBinding", "RoleBinding") and subject[0] in o.get("subjects", []))
    wanted = sorted([("ClusterRoleBinding", "", name)]
                    + ([("ClusterRoleBinding", "", name + "-applications")] if shown == "*"
                       else [("RoleBinding", ns, name) for ns in shown]))
    check(bound == wanted, f"bindings of the server's ServiceAccount: {bound}")
    return errors


def expect_digest_keda(objs):
    errors = []
    check = lambda ok, what: ok or errors.append(what)
    check(not find(objs, "Namespace"), "namespace.create=false still renders a Namespace")
    check(not find(objs, "NetworkPolicy"), "networkPolicy.enabled=false still renders NetworkPolicies")
    check(not find(objs, "HorizontalPodAutoscaler"), "an HPA is rendered with only KEDA on")
    rd, rc = container(objs, "pushsync-receiver")
    wd, wc = container(objs, "pushsync-worker")
    check(rc["image"] == "registry.example.com/pushsync/pushsync-receiver@sha256:" + "a" * 64,
          f"receiver image by digest: {rc['image']}")
    check(wc["image"] == "registry.example.com/mirror/pushsync-worker@sha256:" + "b" * 64,
          f"worker image by digest: {wc['image']}")
    check(rc.get("imagePullPolicy") == "IfNotPresent", "receiver imagePullPolicy")
    check("replicas" not in wd["spec"], "worker replicas rendered although KEDA owns them")
    check(rd["spec"]["replicas"] == 3, "receiver replicas")
    names, env = env_of(wc)
    check(env.get("PUSHSYNC_APPLICATION_NAMESPACES", {}).get("value") == "pushsync,team-a,team-b",
          "PUSHSYNC_APPLICATION_NAMESPACES from watchNamespaces")
    check(names.index("PUSHSYNC_APPLICATION_NAMESPACES") == names.index("PUSHSYNC_NAMESPACE") + 1,
          "PUSHSYNC_APPLICATION_NAMESPACES follows PUSHSYNC_NAMESPACE")
    check(env["PUSHSYNC_MAX_SYNCS"].get("value") == "8", "extraEnv overrides PUSHSYNC_MAX_SYNCS")
    check(names.count("PUSHSYNC_MAX_SYNCS") == 1, "PUSHSYNC_MAX_SYNCS set once")
    check(names.index("PUSHSYNC_MAX_SYNCS") == names.index("PUSHSYNC_GIT_CACHE_MAX_BYTES") + 1,
          "an overridden variable keeps its place")
    check(names[-1] == "PUSHSYNC_GIT_CREDENTIALS", "a new extraEnv variable is appended")
    rnames, renv = env_of(rc)
    check(len(rnames) == len(set(rnames)), "receiver env names are unique")
    check(renv["PUSHSYNC_MAX_CONNECTIONS"].get("value") == "512", "receiver extraEnv override")
    wspec = wd["spec"]["template"]["spec"]
    check({"name": "git-credentials", "secret": {"secretName": "git-credentials"}} in wspec["volumes"],
          "worker extraVolumes")
    check({"name": "git-credentials", "mountPath": "/etc/pushsync/git", "readOnly": True}
          in wc["volumeMounts"], "worker extraVolumeMounts")
    secrets = {v["name"]: v["secret"]["secretName"] for v in wspec["volumes"] if "secret" in v}
    check(secrets.get("amqp") == "worker-broker", "worker.amqp.existingSecret")
    rsecrets = {v["name"]: v["secret"]["secretName"]
                for v in rd["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    check(rsecrets == {"amqp": "receiver-broker", "webhooks": "hooks"}, f"receiver Secrets {rsecrets}")
    check(wspec.get("imagePullSecrets") == [{"name": "regcred"}, {"name": "regcred2"}], "imagePullSecrets")
    (so,) = find(objs, "ScaledObject", "pushsync-worker")
    check(so["spec"]["maxReplicaCount"] == 20 and so["spec"]["minReplicaCount"] == 1, "ScaledObject replica bounds")
    check(so["spec"]["triggers"][0]["metadata"] == {"protocol": "amqp", "mode": "QueueLength",
                                                   "value": "16", "queueName": "pushsync.sync-jobs"},
          f"ScaledObject trigger {so['spec']['triggers'][0]['metadata']}")
    (ta,) = find(objs, "TriggerAuthentication", "pushsync-rabbitmq")
    check(ta["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "keda-broker", "key": "url"}],
          "TriggerAuthentication reads worker.autoscaling.keda.amqpSecret (KEDA's own user, not the workers')")
    (imp,) = find(objs, "ClusterRole", "pushsync-worker-impersonate")
    check(imp["rules"][0]["resourceNames"] == ["pushsync-deployer", "team-a-deployer"],
          "rbac.impersonateServiceAccountNames")
    check(not find(objs, "PodDisruptionBudget", "pushsync-receiver"), "receiver PDB disabled")
    sd, sc = container(objs, "pushsync-server")
    check(sc["image"] == "registry.example.com/pushsync/pushsync-server@sha256:" + "c" * 64,
          f"server image by digest: {sc['image']}")
    check(sd["spec"]["replicas"] == 3, "server replicas")
    snames, senv = env_of(sc)
    check(senv.get("PUSHSYNC_SERVER_NAMESPACES", {}).get("value") == "pushsync,team-a,team-b",
          "PUSHSYNC_SERVER_NAMESPACES from watchNamespaces")
    check(snames[-1] == "PUSHSYNC_SERVER_SESSION_TTL" and senv["PUSHSYNC_SERVER_SESSION_TTL"].get("value") == "1h",
          "server extraEnv appended")
    sspec = sd["spec"]["template"]["spec"]
    ssecrets = {v["name"]: v["secret"] for v in sspec["volumes"] if "secret" in v}
    check(ssecrets == {"session": {"secretName": "ui-session"}},
          f"server.existingSecret (required): {ssecrets}")
    check(sspec.get("imagePullSecrets") == [{"name": "regcred"}, {"name": "regcred2"}], "server imagePullSecrets")
    (policy,) = find(objs, "ConfigMap", "pushsync-server-policy")
    # The values' policy as toYaml renders it (keys sorted, block style).
    check(policy["data"]["policy.yaml"] == (
        "admins:\n- platform\nprojects:\n  team-a:\n    read:\n    - auditors\n    rollback:\n"
        "    - team-a-leads\n    sync:\n    - team-a\n  team-b:\n    sync:\n    - team-b\n"),
        f"server.policy as the policy file: {policy['data']['policy.yaml']!r}")
    errors += server_rbac(objs, "pushsync-server", ["pushsync", "team-a", "team-b"])
    for o in objs:
        ns = o["metadata"].get("namespace")
        # Only the server's Roles go to the other namespaces it shows.
        shown_elsewhere = o["kind"] in ("Role", "RoleBinding") and o["metadata"]["name"] == "pushsync-server"
        check(ns in (None, "pushsync") or (shown_elsewhere and ns in ("team-a", "team-b")),
              f"{o['kind']} {o['metadata']['name']} in namespace {ns}")
    return errors


def expect_hpa(objs):
    errors = []
    check = lambda ok, what: ok or errors.append(what)
    check(not find(objs, "ScaledObject") and not find(objs, "TriggerAuthentication"), "KEDA objects with KEDA off")
    check(len(find(objs, "NetworkPolicy")) == 3, "NetworkPolicies (default on)")
    (ns,) = find(objs, "Namespace")
    check(ns["metadata"]["name"] == "pushsync", "Namespace is the release namespace")
    rd, rc = container(objs, "pushsync-receiver")
    wd, wc = container(objs, "pushsync-worker")
    check(rc["image"] == "ghcr.io/pushsync/pushsync-receiver:0.2.0-rc.1", f"receiver image {rc['image']}")
    check(wc["image"] == "ghcr.io/pushsync/pushsync-worker:0.2.0-rc.1", f"worker image {wc['image']}")
    check("imagePullPolicy" not in rc, "imagePullPolicy left to Kubernetes by default")
    check(wd["metadata"]["labels"]["app.kubernetes.io/version"] == "0.2.0-rc.1", "version label follows image.tag")
    check("replicas" not in wd["spec"], "worker replicas rendered although the HPA owns them")
    (hpa,) = find(objs, "HorizontalPodAutoscaler", "pushsync-worker")
    spec = hpa["spec"]
    check(hpa["apiVersion"] == "autoscaling/v2", "HPA apiVersion")
    check(spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pushsync-worker"},
          "HPA target")
    check((spec["minReplicas"], spec["maxReplicas"]) == (3, 12), "HPA bounds")
    check(spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}], f"HPA metrics {spec['metrics']}")
    check(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300, "HPA scale-down window")
    wspec = wd["spec"]["template"]["spec"]
    check(wspec.get("nodeSelector") == {"kubernetes.io/os": "linux"}, "worker nodeSelector")
    check(wspec.get("tolerations") == [{"key": "dedicated", "operator": "Equal", "value": "gitops",
                                        "effect": "NoSchedule"}], "worker tolerations")
    check("podAntiAffinity" in wspec.get("affinity", {}), "worker affinity")
    check(wc["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
          f"worker resources {wc['resources']}")
    names, env = env_of(wc)
    check(env["PUSHSYNC_APPLICATION_NAMESPACES"].get("value") == "*", "watchNamespaces: ['*']")
    _, sc = container(objs, "pushsync-server")
    check(sc["image"] == "ghcr.io/pushsync/pushsync-server:0.2.0-rc.1", f"server image {sc['image']}")
    check("PUSHSYNC_SERVER_NAMESPACES" not in env_of(sc)[1], "watchNamespaces: ['*'] shows every namespace")
    errors += server_rbac(objs, "pushsync-server", "*")
    (snp,) = find(objs, "NetworkPolicy", "pushsync-server")
    ports = [p["port"] for p in snp["spec"]["egress"][0]["ports"]]
    check(ports == [443, 6443, 5556], f"server.oidcEgressPorts [443, 5556]: server egress ports {ports}")
    (np,) = find(objs, "NetworkPolicy", "pushsync-worker")
    check(np["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}},
                                                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
          f"networkPolicy.metricsFrom replaces the default: {np['spec']['ingress'][0]['from']}")
    check(not find(objs, "Project"), "defaultProject.create=false still renders the Project")
    return errors


def expect_monitoring(objs):
    errors = []
    check = lambda ok, what: ok or errors.append(what)
    extra = {"release": "kube-prometheus-stack", "example.com/team": "platform"}
    (svc,) = find(objs, "Service", "gitops-worker-metrics")
    check(svc["metadata"]["labels"]["app.kubernetes.io/name"] == "pushsync-worker",
          "the metrics Service keeps the job label value pushsync-worker under fullnameOverride")
    check(svc["spec"]["selector"] == {"app.kubernetes.io/name": "pushsync-worker"}, "metrics Service selector")
    sms = find(objs, "ServiceMonitor")
    check(sorted(o["metadata"]["name"] for o in sms) == ["gitops-receiver", "gitops-server", "gitops-worker"],
          f"ServiceMonitors {[o['metadata']['name'] for o in sms]}")
    (pr,) = find(objs, "PrometheusRule", "gitops")
    errors += server_rbac(objs, "gitops-server", ["pushsync"])
    for o in sms + [pr]:
        labels = o["metadata"]["labels"]
        check(extra.items() <= labels.items(), f"{o['kind']} {o['metadata']['name']} lacks monitoring.labels")
        check(labels.get("app.kubernetes.io/part-of") == "pushsync", f"{o['kind']} {o['metadata']['name']} own labels")
    (cm,) = find(objs, "ConfigMap", "gitops-grafana-dashboard")
    for o in (svc, cm):
        check(not extra.keys() & o["metadata"]["labels"].keys(),
              f"monitoring.labels on {o['kind']} {o['metadata']['name']} (only ServiceMonitors and the PrometheusRule)")
    check(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard ConfigMap label grafana_dashboard: \"1\"")
    check(json.loads(cm["data"]["pushsync.json"]).get("title"), "dashboard ConfigMap holds the dashboard JSON")
    check("{{ $labels." in json.dumps(pr["spec"]), "the rules' $labels templates survive Helm")
    for o in objs:
        ns = o["metadata"].get("namespace")
        check(ns in (None, "pushsync"), f"{o['kind']} {o['metadata']['name']} in namespace {ns}")
    return errors


def expect_no_server(objs):
    errors = []
    check = lambda ok, what: ok or errors.append(what)
    left = [f"{o['kind']} {o['metadata']['name']}" for o in objs
            if o["metadata"]["name"].startswith("pushsync-server")
            or (o["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "pushsync-server"]
    check(not left, f"server.enabled=false still renders {left}")
    check(len(find(objs, "NetworkPolicy")) == 2, "NetworkPolicies of the receiver and workers only")
    check(len(find(objs, "ServiceMonitor")) == 2, "ServiceMonitors of the receiver and workers only")
    check(len(find(objs, "Deployment")) == 2, "Deployments of the receiver and workers only")
    return errors


EXPECTATIONS = {
    "digest-keda-values.yaml": expect_digest_keda,
    "hpa-values.yaml": expect_hpa,
    "monitoring-values.yaml": expect_monitoring,
    "no-server-values.yaml": expect_no_server,
}


def expect(name, path):
    check = EXPECTATIONS.get(name)
    if check is None:
        print(f"  no expectations for ci/{name}: add them to scripts/check-chart.sh")
        return 1
    errors = check(load(path))
    for e in errors:
        print(f"  {e}")
    return 1 if errors else 0


def deploy_server_rbac(path):
    """deploy/ (and so the chart's defaults): the server's Application and
    Event rights in the install namespace only."""
    errors = server_rbac(load(path), "pushsync-server", ["pushsync"])
    for e in errors:
        print(f"  {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    modes = {"parity": parity, "pick": pick, "absent": absent, "expect": expect,
             "server-rbac": deploy_server_rbac}
    sys.exit(modes[mode](*args))
PY

render() { helm template "$release" "$chart" --namespace "$namespace" --include-crds "$@"; }

# 1. Lint.
if helm lint --strict "$chart" >"$work/lint.out" 2>&1; then
  pass "helm lint --strict $chart"
else
  fail "helm lint --strict $chart"; sed 's/^/  /' "$work/lint.out"
fi
for values in "$chart"/ci/*.yaml; do
  if helm lint --strict "$chart" --namespace "$namespace" -f "$values" >"$work/lint.out" 2>&1; then
    pass "helm lint --strict $chart -f $values"
  else
    fail "helm lint --strict $chart -f $values"; sed 's/^/  /' "$work/lint.out"
  fi
done

# 2. Parity with deploy/.
kubectl kustomize deploy/ | to_jsonl >"$work/base.jsonl"
render | to_jsonl >"$work/chart.jsonl"
if python3 "$work/compare.py" parity "$work/base.jsonl" "$work/chart.jsonl" >"$work/diff.out"; then
  pass "helm template (defaults) == kubectl kustomize deploy/ ($(tail -n1 "$work/diff.out" | sed 's/^ *//'))"
else
  fail "helm template (defaults) differs from kubectl kustomize deploy/"; cat "$work/diff.out"
fi
{ kubectl kustomize deploy/; echo '---'; kubectl kustomize deploy/autoscaling/; } | to_jsonl >"$work/base-keda.jsonl"
render --set worker.autoscaling.keda.enabled=true | to_jsonl >"$work/chart-keda.jsonl"
if python3 "$work/compare.py" parity "$work/base-keda.jsonl" "$work/chart-keda.jsonl" --worker-autoscaled >"$work/diff.out"; then
  pass "helm template (keda on) == deploy/ + deploy/autoscaling/, worker replicas left to KEDA ($(tail -n1 "$work/diff.out" | sed 's/^ *//'))"
else
  fail "helm template (keda on) differs from deploy/ + deploy/autoscaling/"; cat "$work/diff.out"
fi
if python3 "$work/compare.py" server-rbac "$work/base.jsonl" >"$work/diff.out"; then
  pass "kubectl kustomize deploy/: the server patches Applications and reads Events in pushsync only (Role), reads the tree's kinds cluster-wide"
else
  fail "kubectl kustomize deploy/: the server's RBAC"; cat "$work/diff.out"
fi
kubectl kustomize deploy/monitoring/ | to_jsonl >"$work/monitoring.jsonl"
if python3 "$work/compare.py" absent "$work/monitoring.jsonl" "$work/chart.jsonl" >"$work/diff.out"; then
  pass "helm template (defaults): no monitoring objects ($(tail -n1 "$work/diff.out" | sed 's/^ *//'))"
else
  fail "helm template (defaults) renders monitoring objects"; cat "$work/diff.out"
fi
for switches in serviceMonitors prometheusRule dashboard serviceMonitors,prometheusRule,dashboard; do
  sets=$(sed -E 's/([^,]+)/monitoring.\1.enabled=true/g' <<<"$switches")
  { cat "$work/base.jsonl"; python3 "$work/compare.py" pick "$work/monitoring.jsonl" "$switches"; } >"$work/base-mon.jsonl"
  render --set "$sets" | to_jsonl >"$work/chart-mon.jsonl"
  if python3 "$work/compare.py" parity "$work/base-mon.jsonl" "$work/chart-mon.jsonl" >"$work/diff.out"; then
    pass "helm template --set $sets == deploy/ + its part of deploy/monitoring/ ($(tail -n1 "$work/diff.out" | sed 's/^ *//'))"
  else
    fail "helm template --set $sets differs from deploy/ + its part of deploy/monitoring/"; cat "$work/diff.out"
  fi
done

# 3. Non-default values.
for values in "$chart"/ci/*.yaml; do
  if ! render -f "$values" >"$work/ci.yaml" 2>"$work/ci.err"; then
    fail "helm template -f $values"; sed 's/^/  /' "$work/ci.err"; continue
  fi
  to_jsonl <"$work/ci.yaml" >"$work/ci.jsonl"
  if python3 "$work/compare.py" expect "$(basename "$values")" "$work/ci.jsonl" >"$work/expect.out"; then
    pass "helm template -f $values: expected effects"
  else
    fail "helm template -f $values"; cat "$work/expect.out"
  fi
done

# 4. Copies byte for byte: CRDs, and the monitoring sources the chart renders.
crds_ok=1
if [[ "$(cd deploy/crds && ls)" != "$(cd "$chart/crds" && ls)" ]]; then
  crds_ok=0; echo "  deploy/crds/: $(cd deploy/crds && ls | xargs); $chart/crds/: $(cd "$chart/crds" && ls | xargs)"
fi
for crd in deploy/crds/*.yaml; do
  cmp -s "$crd" "$chart/crds/$(basename "$crd")" || { crds_ok=0; echo "  $chart/crds/$(basename "$crd") differs from $crd"; }
done
if ((crds_ok)); then
  pass "$chart/crds/ == deploy/crds/ byte for byte ($(cd deploy/crds && ls | xargs))"
else
  fail "$chart/crds/ drifted from deploy/crds/ (cp deploy/crds/*.yaml $chart/crds/)"
fi
files_ok=1
if [[ "$(cd "$chart/files" && ls)" != "$(printf '%s\n' grafana-dashboard.json rules.yaml)" ]]; then
  files_ok=0; echo "  $chart/files/: $(cd "$chart/files" && ls | xargs); expected: grafana-dashboard.json rules.yaml"
fi
for source in deploy/monitoring/rules.yaml deploy/monitoring/grafana-dashboard.json; do
  cmp -s "$source" "$chart/files/$(basename "$source")" || { files_ok=0; echo "  $chart/files/$(basename "$source") differs from $source"; }
done
if ((files_ok)); then
  pass "$chart/files/ == deploy/monitoring/ sources byte for byte (grafana-dashboard.json rules.yaml)"
else
  fail "$chart/files/ drifted from deploy/monitoring/ (scripts/monitoring-manifests.sh copies them)"
fi

# 5. Refused values: what must fail, and the words its error must hold.
refuse() {
  local what=$1 words=$2; shift 2
  if render "$@" >/dev/null 2>"$work/refused.err"; then
    fail "$what: helm template accepted $*"
  elif grep -qiE "$words" "$work/refused.err"; then
    pass "$what: refused ($(grep -iE "$words" "$work/refused.err" | head -n1 | sed 's/^ *//' | cut -c1-150))"
  else
    fail "$what: refused, but not for the expected reason:"; sed 's/^/  /' "$work/refused.err"
  fi
}
refuse "typo worker.replica" "additional propert.*replica" --set worker.replica=2
refuse "typo networkPolicy.enable" "additional propert.*enable" --set networkPolicy.enable=false
refuse "typo receiver.resources.limit" "additional propert.*limit" --set receiver.resources.limit.memory=1Gi
refuse "typo worker.autoscaling.keda.enable" "additional propert.*enable" --set worker.autoscaling.keda.enable=true
refuse "typo at top level (watchNamespace)" "additional propert.*watchNamespace" --set 'watchNamespace[0]=team-a'
refuse "wrong type (replicas: two)" "replicas" --set-string worker.replicas=two
refuse "invalid namespace in watchNamespaces" "watchNamespaces" --set 'watchNamespaces[0]=Team_A'
refuse "'*' mixed with namespaces" "watchNamespaces" --set 'watchNamespaces[0]=*' --set 'watchNamespaces[1]=team-a'
refuse "empty impersonation list (would allow every name)" "impersonateServiceAccountNames" --set 'rbac.impersonateServiceAccountNames=null'
refuse "both autoscalers" "keda or hpa, not both" --set worker.autoscaling.keda.enabled=true --set worker.autoscaling.hpa.enabled=true
refuse "default Project without pushsync-deployer impersonation" "must include pushsync-deployer" --set 'rbac.impersonateServiceAccountNames[0]=other'
refuse "typo monitoring.serviceMonitors.enable" "additional propert.*enable" --set monitoring.serviceMonitors.enable=true
refuse "typo monitoring.label" "additional propert.*label" --set monitoring.label.release=kube-prometheus-stack
refuse "invalid label value in monitoring.labels" "monitoring/labels" --set-string 'monitoring.labels.release=kube prometheus'
refuse "monitoring.labels replacing a chart label" "a label the chart sets" --set monitoring.serviceMonitors.enabled=true --set 'monitoring.labels.app\.kubernetes\.io/name=other'
refuse "typo server.polcy" "additional propert.*polcy" --set 'server.polcy.admins[0]=platform'
refuse "unknown key in server.policy (project)" "additional propert.*project" --set 'server.policy.project.team-a.read[0]=team-a'
refuse "unknown role in server.policy (write)" "additional propert.*write" --set 'server.policy.projects.team-a.write[0]=team-a'
refuse "blank group in server.policy" "admins" --set 'server.policy.admins[0]= '
refuse "invalid port in server.oidcEgressPorts" "oidcEgressPorts" --set 'server.oidcEgressPorts[0]=70000'
refuse "alerts with nameOverride (job names change)" "leave nameOverride empty" --set monitoring.prometheusRule.enabled=true --set nameOverride=gitops
if helm lint --strict "$chart" --set worker.replica=2 >"$work/lint.out" 2>&1; then
  fail "helm lint --strict accepted --set worker.replica=2"
else
  pass "helm lint --strict --set worker.replica=2: refused"
fi

echo
if ((failures)); then
  echo "check-chart: $failures check(s) failed"
  exit 1
fi
echo "check-chart: all checks passed"
