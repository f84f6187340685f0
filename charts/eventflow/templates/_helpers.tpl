{{- define "eventflow.name" -}}eventflow-operator{{- end -}}

{{- define "eventflow.labels" -}}
app.kubernetes.io/name: {{ include "eventflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "eventflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eventflow.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The rules the operator needs on the objects it reconciles. No wildcards. */}}
{{- define "eventflow.workloadRules" -}}
- apiGroups: [eventflow.dev]
  resources: [streams, eventbrokers]
  verbs: [get, list, watch, patch, update]
- apiGroups: [eventflow.dev]
  resources: [appregistrations]
  verbs: [get, list, watch]
- apiGroups: [eventflow.dev]
  resources: [streams/status, eventbrokers/status]
  verbs: [get, patch, update]
- apiGroups: [eventflow.dev]
  resources: [streams/finalizers, eventbrokers/finalizers]
  verbs: [update]
# DLQ redrives: the operator moves the messages and reports in status.
- apiGroups: [eventflow.dev]
  resources: [deadletterredrives]
  verbs: [get, list, watch, patch, update]
- apiGroups: [eventflow.dev]
  resources: [deadletterredrives/status]
  verbs: [get, patch, update]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, update, delete]
# A Stream's revisions (history and rollback).
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [services, secrets, configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
# worker.autoscale.engine KEDA: a worker's ScaledObject and TriggerAuthentication.
- apiGroups: [keda.sh]
  resources: [scaledobjects, triggerauthentications]
  verbs: [get, list, watch, create, patch, update, delete]
# Each Stream's NetworkPolicy (spec.network).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, update, delete]
# A suspended Stream's pods are asked to drain (POST /drain on their admin port).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "eventflow.dashboardSelectorLabels" -}}
app.kubernetes.io/name: eventflow-dashboard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eventflow.dashboardLabels" -}}
{{ include "eventflow.dashboardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The dashboard reads; it never writes and never sees a Secret. */}}
{{- define "eventflow.dashboardRules" -}}
- apiGroups: [eventflow.dev]
  resources: [streams, eventbrokers, appregistrations, deadletterredrives]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods, events]
  verbs: [get, list, watch]
{{- end -}}
