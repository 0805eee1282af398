{{/*
Names. With the release name `pushsync` every object is named as in deploy/
(pushsync-receiver, pushsync-worker, …). Truncated to 40 characters so the
longest suffix (-worker-impersonate) still fits a 63-character name.
*/}}
{{- define "pushsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "pushsync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pushsync.receiver.fullname" -}}
{{- printf "%s-receiver" (include "pushsync.fullname" .) -}}
{{- end -}}

{{- define "pushsync.worker.fullname" -}}
{{- printf "%s-worker" (include "pushsync.fullname" .) -}}
{{- end -}}

{{- define "pushsync.server.fullname" -}}
{{- printf "%s-server" (include "pushsync.fullname" .) -}}
{{- end -}}

{{/* The image tag in use: image.tag, or the chart's appVersion. */}}
{{- define "pushsync.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/*
Labels Helm conventionally adds. These four are the only labels
scripts/check-chart.sh ignores when it compares with deploy/; they go on the
objects' own metadata only, never on selectors or pod templates (a new chart
version then restarts no pod).
*/}}
{{- define "pushsync.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ include "pushsync.tag" . | trunc 63 | trimSuffix "-" | quote }}
{{- end -}}

{{/* Selector labels: as deploy/, app.kubernetes.io/name only. */}}
{{- define "pushsync.receiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushsync.name" . }}-receiver
{{- end -}}

{{- define "pushsync.worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushsync.name" . }}-worker
{{- end -}}

{{- define "pushsync.server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushsync.name" . }}-server
{{- end -}}

{{/* Pod template labels (deploy/: name and part-of). */}}
{{- define "pushsync.receiver.podLabels" -}}
{{ include "pushsync.receiver.selectorLabels" . }}
app.kubernetes.io/part-of: pushsync
{{- end -}}

{{- define "pushsync.worker.podLabels" -}}
{{ include "pushsync.worker.selectorLabels" . }}
app.kubernetes.io/part-of: pushsync
{{- end -}}

{{- define "pushsync.server.podLabels" -}}
{{ include "pushsync.server.selectorLabels" . }}
app.kubernetes.io/part-of: pushsync
{{- end -}}

{{/* Labels of the Deployments and the Services: pod labels plus Helm's. */}}
{{- define "pushsync.receiver.labels" -}}
{{ include "pushsync.receiver.podLabels" . }}
{{ include "pushsync.helmLabels" . }}
{{- end -}}

{{- define "pushsync.worker.labels" -}}
{{ include "pushsync.worker.podLabels" . }}
{{ include "pushsync.helmLabels" . }}
{{- end -}}

{{- define "pushsync.server.labels" -}}
{{ include "pushsync.server.podLabels" . }}
{{ include "pushsync.helmLabels" . }}
{{- end -}}

{{/*
An image reference: (list $ .Values.<component>.image).
registry/repository@digest when a digest is set, else registry/repository:tag.
*/}}
{{- define "pushsync.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $repository := $image.repository -}}
{{- with $root.Values.image.registry -}}
{{- $repository = printf "%s/%s" . $repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (include "pushsync.tag" $root) -}}
{{- end -}}
{{- end -}}

{{/*
A container's env: (list <the chart's variables, as a YAML list> <extraEnv>).
An extraEnv entry whose name the chart sets replaces that entry in place
(server-side apply refuses duplicate names); the others are appended.
*/}}
{{- define "pushsync.env" -}}
{{- $base := index . 0 | fromYamlArray -}}
{{- $extra := index . 1 -}}
{{- $override := dict -}}
{{- range $extra -}}
{{- $_ := set $override .name . -}}
{{- end -}}
{{- $seen := dict -}}
{{- $env := list -}}
{{- range $base -}}
{{- $env = append $env (get $override .name | default .) -}}
{{- $_ := set $seen .name true -}}
{{- end -}}
{{- range $extra -}}
{{- if not (hasKey $seen .name) -}}
{{- $env = append $env (get $override .name) -}}
{{- $_ := set $seen .name true -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Helm-only guards, checked wherever the workers are rendered. */}}
{{- define "pushsync.validate" -}}
{{- if and .Values.worker.autoscaling.keda.enabled .Values.worker.autoscaling.hpa.enabled -}}
{{- fail "worker.autoscaling: enable keda or hpa, not both (KEDA runs its own HorizontalPodAutoscaler)" -}}
{{- end -}}
{{- if and .Values.defaultProject.create (not (has "pushsync-deployer" .Values.rbac.impersonateServiceAccountNames)) -}}
{{- fail "rbac.impersonateServiceAccountNames must include pushsync-deployer while defaultProject.create is true (the default Project applies as it)" -}}
{{- end -}}
{{- $m := .Values.monitoring -}}
{{- if and (or $m.prometheusRule.enabled $m.dashboard.enabled) (ne (include "pushsync.name" .) "pushsync") -}}
{{- fail "monitoring: the alerts and the dashboard select job=\"pushsync-receiver\" and job=\"pushsync-worker\", but nameOverride renames the app.kubernetes.io/name labels the ServiceMonitors take the job from; leave nameOverride empty" -}}
{{- end -}}
{{- end -}}

{{/* Whether an autoscaler owns the workers' replica count. */}}
{{- define "pushsync.worker.autoscaled" -}}
{{- if or .Values.worker.autoscaling.keda.enabled .Values.worker.autoscaling.hpa.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Labels of a ServiceMonitor or the PrometheusRule: (list $ <their labels, as
YAML>). monitoring.labels are added (for the Prometheus Operator's selectors)
but may not replace one of the chart's: selectors and job names depend on them.
*/}}
{{- define "pushsync.monitoring.labels" -}}
{{- $root := index . 0 -}}
{{- $labels := index . 1 | fromYaml -}}
{{- range $key, $value := $root.Values.monitoring.labels -}}
{{- if hasKey $labels $key -}}
{{- fail (printf "monitoring.labels: %s is a label the chart sets; choose another" $key) -}}
{{- end -}}
{{- $_ := set $labels $key $value -}}
{{- end -}}
{{- toYaml $labels -}}
{{- end -}}
