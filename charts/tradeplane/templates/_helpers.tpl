{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "tradeplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name. */}}
{{- define "tradeplane.fullname" -}}
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

{{- define "tradeplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels. Not app.kubernetes.io/managed-by=tradeplane-operator: that one marks
the runtime pods the operator owns. */}}
{{- define "tradeplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tradeplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tradeplane.labels" -}}
helm.sh/chart: {{ include "tradeplane.chart" . }}
{{ include "tradeplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tradeplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tradeplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tradeplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC, least privilege. Each rule is what a named piece of code does; docs/deploy.md has
the table and tests/cluster/test_chart_rbac.py proves it against a real API server (every
granted verb is used, nothing else is asked for).
Rules for the namespaces the operator works in (a ClusterRole with --all-namespaces, a
Role per namespace with watchNamespaces).
*/}}
{{- define "tradeplane.rules.namespaced" -}}
# kopf watches TradingModules; patch: kopf's finalizer and its progress annotations,
# the operator's removal of the resume/reset/promote annotations, and spec.mode when a
# promotion is accepted (Kube.patch_spec).
- apiGroups: [tradeplane.io]
  resources: [tradingmodules]
  verbs: [list, watch, patch]
# The operator's status writes (Kube.patch_status).
- apiGroups: [tradeplane.io]
  resources: [tradingmodules/status]
  verbs: [patch]
# TradingPortfolios: kopf watches them (the portfolio daemon, the halt index); patch:
# kopf's finalizer and the removal of the resume-halt annotation. Admission lists
# portfolios and modules fresh (list).
- apiGroups: [tradeplane.io]
  resources: [tradingportfolios]
  verbs: [list, watch, patch]
- apiGroups: [tradeplane.io]
  resources: [tradingportfolios/status]
  verbs: [patch]
# The runtime pods: kopf's pod index and events (list/watch), the module's one pod
# (create), replacement and cleanup (delete; list in the deletion handler).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
# The runtime's config maps: immutable, created with the pod (create), the previous
# pod's removed by name (delete). A backtest's report map: created, rewritten (patch).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch, delete]
# kopf.event(): the events `kubectl describe tradingmodule` shows.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
# kopf peering, namespaced operators: one KopfPeering per watched namespace (list/watch
# to see the peers, patch to post this replica's keep-alive into its status).
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  resourceNames: [{{ .Values.peering.name | quote }}]
  verbs: [patch]
{{- end }}
{{- end }}

{{/* Cluster-scoped rules, in a ClusterRole in both modes. */}}
{{- define "tradeplane.rules.cluster" -}}
# kopf's resource observer: notices CRDs being (re)installed or upgraded at run time.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.watchNamespaces }}
# kopf's namespace observer (namespaced operators only): lists and watches namespaces to
# match --namespace against them; without it kopf warns at every start and never notices a
# watched namespace being deleted or re-created.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- else if .Values.peering.enabled }}
# kopf peering, cluster-wide operators: one ClusterKopfPeering (list/watch to see the
# peers, patch to post this replica's keep-alive into its status).
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  resourceNames: [{{ .Values.peering.name | quote }}]
  verbs: [patch]
{{- end }}
{{- end }}
