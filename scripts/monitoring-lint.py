#!/usr/bin/env python3
"""Static checks of deploy/monitoring/ (python3 standard library only; run by
scripts/check-monitoring.sh, which also runs promtool on what this writes).

- Every metric name in rules.yaml's expressions and in the dashboard's
  queries is in README.md's metric tables (or is `up`, or one of the RabbitMQ
  plugin's metrics listed below); a histogram is only ever read through its
  `_bucket`, `_sum` or `_count` series, and nothing else is.
- Every alert has a severity label, summary, description and a runbook_url
  whose anchor is a `### <AlertName>` heading of deploy/monitoring/README.md,
  and at least one firing and one not-firing case in tests/*.yaml.
- The dashboard: schemaVersion >= 39, a `datasource` variable of type
  datasource (prometheus), every panel and query on `${datasource}`.
- With --promql-out FILE: the dashboard's queries, Grafana variables
  substituted, as recording rules for `promtool check rules` (syntax check).

rules.yaml is read line by line (no YAML parser in the standard library):
keep its layout — `- alert:` items with `expr:` inline or as a `|` block.
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MON = ROOT / "deploy" / "monitoring"

# Not ours: what the rabbitmq_prometheus plugin exports per queue
# (/metrics/detailed?family=queue_coarse_metrics and /metrics/per-object).
RABBITMQ = {
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
}
ANCHOR_BASE = "https://github.com/pushsync/pushsync/blob/main/deploy/monitoring/README.md#"
NAME = re.compile(r"\b((?:pushsync|rabbitmq)_[a-zA-Z0-9_]+|up(?=\s*\{))")

errors = []


def catalog():
    """Metric name -> type, from README.md's metric tables."""
    row = re.compile(r"^\| `(pushsync_[a-z0-9_]+)` \| (counter|gauge|histogram) \|")
    found = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = row.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    if not found:
        errors.append("README.md: no metric tables found")
    return found


def check_names(where, expr, known):
    used = set()
    for name in NAME.findall(expr):
        used.add(name)
        if name == "up" or name in RABBITMQ:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if known.get(name) == "histogram":
            errors.append(f"{where}: histogram {name} read without _bucket/_sum/_count")
        elif name in known:
            pass
        elif known.get(base) == "histogram":
            pass
        else:
            errors.append(f"{where}: {name} is not in README.md's metric tables")
    return used


def rules():
    """[(alert, expr, block text)] from rules.yaml."""
    lines = (MON / "rules.yaml").read_text().splitlines()
    alerts, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)- alert: (\S+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, name = len(m.group(1)), m.group(2)
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*- (alert|record|name):", lines[j]):
            j += 1
        block = lines[i:j]
        expr = None
        for k, line in enumerate(block):
            e = re.match(r"^(\s*)expr:\s*(.*)$", line)
            if not e:
                continue
            if e.group(2) in ("|", "|-", ">", ">-"):
                body, n = [], k + 1
                while n < len(block) and (not block[n].strip() or len(block[n]) - len(block[n].lstrip()) > len(e.group(1))):
                    body.append(block[n])
                    n += 1
                expr = "\n".join(body)
            else:
                expr = e.group(2)
        if expr is None:
            errors.append(f"rules.yaml: {name} has no expr")
            expr = ""
        alerts.append((name, expr, "\n".join(block)))
        i = j
    if not alerts:
        errors.append("rules.yaml: no alerts found")
    return alerts


def tests():
    """alert -> [firing cases, not-firing cases], from tests/*.yaml."""
    counts = {}
    for path in sorted((MON / "tests").glob("*.yaml")):
        current = None
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*alertname:\s*(\S+)", line)
            if m:
                current = m.group(1)
                continue
            m = re.match(r"^\s*exp_alerts:\s*(.*)$", line)
            if m and current:
                slot = counts.setdefault(current, [0, 0])
                slot[1 if m.group(1).strip() == "[]" else 0] += 1
                current = None
    return counts


def main():
    promql_out = None
    if sys.argv[1:2] == ["--promql-out"] and len(sys.argv) == 3:
        promql_out = pathlib.Path(sys.argv[2])
    elif sys.argv[1:]:
        sys.exit("usage: monitoring-lint.py [--promql-out FILE]")
    known = catalog()
    used = {}

    # Alerts.
    headings = {
        line[4:].strip().lower()
        for line in (MON / "README.md").read_text().splitlines()
        if line.startswith("### ")
    }
    cases = tests()
    for name, expr, block in rules():
        used.setdefault("rules.yaml", set()).update(check_names(f"rules.yaml {name}", expr, known))
        for needed in ("severity:", "summary:", "description:", "runbook_url:"):
            if needed not in block:
                errors.append(f"rules.yaml: {name} has no {needed[:-1]}")
        m = re.search(r'runbook_url:\s*"?([^"\s]+)', block)
        if m:
            url = m.group(1)
            if not url.startswith(ANCHOR_BASE):
                errors.append(f"rules.yaml: {name}'s runbook_url does not start with {ANCHOR_BASE}")
            elif url[len(ANCHOR_BASE):] != name.lower() or name.lower() not in headings:
                errors.append(f"rules.yaml: {name}'s runbook_url needs the anchor #{name.lower()} and a '### {name}' heading in deploy/monitoring/README.md")
        firing, quiet = cases.get(name, [0, 0])
        if not firing or not quiet:
            errors.append(f"tests/: {name} needs a firing and a not-firing case (has {firing} and {quiet})")

    # Dashboard.
    dashboard = json.loads((MON / "grafana-dashboard.json").read_text())
    if dashboard.get("schemaVersion", 0) < 39:
        errors.append("grafana-dashboard.json: schemaVersion below 39")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("grafana-dashboard.json: no `datasource` variable of type datasource (prometheus)")
    exprs = []
    for v in variables.values():
        if v.get("type") == "query":
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
            exprs.append((f"variable {v['name']}", m.group(1) if m else query))

    def walk(panels):
        for panel in panels:
            if panel.get("type") == "row":
                walk(panel.get("panels", []))
                continue
            title = panel.get("title", "?")
            if panel.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"grafana-dashboard.json: panel {title!r} is not on ${{datasource}}")
            for t in panel.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    errors.append(f"grafana-dashboard.json: a query of {title!r} is not on ${{datasource}}")
                exprs.append((f"panel {title!r}", t.get("expr", "")))

    walk(dashboard.get("panels", []))
    substitutions = {
        "$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h",
        "${queue_prefix}": "pushsync", "$queue_prefix": "pushsync",
        "${namespace}": "pushsync", "$namespace": "pushsync",
    }
    recording = []
    for n, (where, expr) in enumerate(exprs):
        used.setdefault("grafana-dashboard.json", set()).update(
            check_names(f"grafana-dashboard.json {where}", expr, known))
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        if "$" in expr:
            errors.append(f"grafana-dashboard.json {where}: unknown variable in {expr!r}")
        recording.append({"record": f"dashboard:query_{n}", "expr": expr})
    if promql_out:
        # JSON is YAML: promtool reads this as a rule file.
        promql_out.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": recording}]}, indent=1))

    for where in sorted(used):
        print(f"{where}: {' '.join(sorted(used[where]))}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


main()
