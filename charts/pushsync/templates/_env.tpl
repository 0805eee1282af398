{{/*
The variables the chart sets, as deploy/ sets them (a YAML list; extraEnv
entries of the same name replace them in place, see "pushsync.env").
*/}}
{{- define "pushsync.receiver.env" -}}
- {name: PUSHSYNC_LISTEN, value: "0.0.0.0:8080"}
- {name: PUSHSYNC_AMQP_URL_FILE, value: /etc/pushsync/amqp/url}
- {name: PUSHSYNC_GITHUB_SECRET_FILE, value: /etc/pushsync/webhooks/github}
- {name: PUSHSYNC_GITLAB_TOKEN_FILE, value: /etc/pushsync/webhooks/gitlab}
- {name: PUSHSYNC_GITEA_SECRET_FILE, value: /etc/pushsync/webhooks/gitea}
- {name: PUSHSYNC_BITBUCKET_SECRET_FILE, value: /etc/pushsync/webhooks/bitbucket}
- {name: PUSHSYNC_LOG_FORMAT, value: json}
# What unauthenticated clients can make a pod hold, against the 256Mi limit
# (bodies are buffered whole before their signature can be checked).
# Measured: a connection costs up to ~130 KiB while its head arrives
# (actix-web's read buffer), and bodies count against the in-flight budget.
# Worst case: 256 connections x 130 KiB (~33 MiB) + 64 MiB of bodies + ~10 MiB
# baseline, about 110 MiB; the rest is headroom for parsing verified pushes
# (up to 8 MiB each). Heads must arrive within 5s and bodies within 30s, or
# 408. Two HTTP workers: without a CPU limit the default is one per node CPU,
# each with its own buffers, and two serve webhook rates many times over.
# Raising receiver.resources or these (through extraEnv) go together.
- {name: PUSHSYNC_HTTP_WORKERS, value: "2"}
- {name: PUSHSYNC_MAX_CONNECTIONS, value: "256"}
- {name: PUSHSYNC_MAX_BODY_BYTES, value: "8388608"}
- {name: PUSHSYNC_MAX_IN_FLIGHT_BYTES, value: "67108864"}
- {name: PUSHSYNC_HEADER_TIMEOUT, value: 5s}
- {name: PUSHSYNC_REQUEST_DEADLINE, value: 30s}
{{- end -}}

{{- define "pushsync.worker.env" -}}
# A broker user that may configure, write and read pushsync.* (it declares
# the queues; deploy/README.md).
- {name: PUSHSYNC_AMQP_URL_FILE, value: /etc/pushsync/amqp/url}
# The install namespace: Projects, Leases, and (unless
# PUSHSYNC_APPLICATION_NAMESPACES says more) Applications.
- name: PUSHSYNC_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- with .Values.watchNamespaces }}
- {name: PUSHSYNC_APPLICATION_NAMESPACES, value: {{ join "," . | quote }}}
{{- end }}
- name: PUSHSYNC_IDENTITY
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- {name: PUSHSYNC_METRICS_LISTEN, value: "0.0.0.0:9090"}
- {name: PUSHSYNC_GIT_CACHE, value: /var/cache/pushsync/git}
# Inside the volume's 5Gi sizeLimit (kubelet evicts a pod over it).
- {name: PUSHSYNC_GIT_CACHE_MAX_BYTES, value: 4Gi}
- {name: PUSHSYNC_MAX_SYNCS, value: "4"}
- {name: PUSHSYNC_MAX_GIT_FETCHES, value: "4"}
- {name: PUSHSYNC_POLL_INTERVAL, value: 10m}
- {name: PUSHSYNC_LOG_FORMAT, value: json}
{{- end -}}

{{- define "pushsync.server.env" -}}
# UI, API, /metrics, /healthz and /readyz.
- {name: PUSHSYNC_SERVER_LISTEN, value: "0.0.0.0:8090"}
# The Applications shown: those the workers honour (watchNamespaces; the
# release namespace when empty, every namespace with ["*"]).
{{- if not .Values.watchNamespaces }}
- name: PUSHSYNC_SERVER_NAMESPACES
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- else if not (has "*" .Values.watchNamespaces) }}
- {name: PUSHSYNC_SERVER_NAMESPACES, value: {{ join "," .Values.watchNamespaces | quote }}}
{{- end }}
- {name: PUSHSYNC_SERVER_POLICY, value: /etc/pushsync-server/policy/policy.yaml}
- {name: PUSHSYNC_SERVER_SESSION_KEY_FILE, value: /etc/pushsync-server/session/key}
- {name: PUSHSYNC_SERVER_TOKENS, value: /etc/pushsync-server/session/tokens}
- {name: PUSHSYNC_LOG_FORMAT, value: json}
{{- end -}}
