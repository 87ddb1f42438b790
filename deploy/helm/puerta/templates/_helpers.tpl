{{/* The chart name, or nameOverride. */}}
{{- define "puerta.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else the release name when it contains the
chart name ("puerta"), else RELEASE-puerta. Flagger's webhook URLs name the Service by it.
*/}}
{{- define "puerta.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "puerta.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "puerta.labels" -}}
helm.sh/chart: {{ include "puerta.chart" . }}
{{ include "puerta.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select Puerta's pods (never change them on an upgrade). */}}
{{- define "puerta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "puerta.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "puerta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "puerta.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding policy.yaml. */}}
{{- define "puerta.policyConfigMap" -}}
{{- default (include "puerta.fullname" .) .Values.existingPolicyConfigMap }}
{{- end }}

{{/* RBAC rules: read Canaries and the workloads they target, nothing else. */}}
{{- define "puerta.rbacRules" -}}
- apiGroups: ["flagger.app"]
  resources: ["canaries"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments", "daemonsets", "statefulsets"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* The worker's resources (worker.enabled): RELEASE-puerta-worker. */}}
{{- define "puerta.workerFullname" -}}
{{- printf "%s-worker" (include "puerta.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the worker's pods. Their name differs from the main pods' so that neither
Deployment (nor the main Service, which Flagger calls) selects the other's pods.
*/}}
{{- define "puerta.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "puerta.name" . }}-worker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{/* Labels of the worker's objects: the chart's, so one ServiceMonitor finds both Services. */}}
{{- define "puerta.workerLabels" -}}
{{ include "puerta.labels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* The selector labels of a pod template: (dict "root" $ "worker" BOOL). */}}
{{- define "puerta.podSelectorLabels" -}}
{{- if .worker }}
{{- include "puerta.workerSelectorLabels" .root }}
{{- else }}
{{- include "puerta.selectorLabels" .root }}
{{- end }}
{{- end }}
