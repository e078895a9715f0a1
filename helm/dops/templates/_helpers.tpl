{{/* Chart name (nameOverride aware), at most 63 characters. */}}
{{- define "dops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: "<release>-<name>", or the release name alone when it already contains the chart name. */}}
{{- define "dops.fullname" -}}
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

{{- define "dops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "dops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels (app.kubernetes.io/*). */}}
{{- define "dops.labels" -}}
helm.sh/chart: {{ include "dops.chart" . }}
{{ include "dops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: dops
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "dops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference. */}}
{{- define "dops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The default worker image: defaultTarget.image, else the operator image. */}}
{{- define "dops.workerImage" -}}
{{- default (include "dops.image" .) .Values.defaultTarget.image }}
{{- end }}

{{/*
Namespaces that get the worker ServiceAccount and RoleBinding, as a JSON list:
the watched namespaces, or (cluster-wide) the release namespace plus workerServiceAccount.namespaces.
*/}}
{{- define "dops.workerNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- prepend .Values.workerServiceAccount.namespaces .Release.Namespace | uniq | toJson }}
{{- end }}
{{- end }}

{{/* The log-archive claim name (type pvc). */}}
{{- define "dops.logClaimName" -}}
{{- if .Values.logArchive.pvc.create }}
{{- printf "%s-logs" (include "dops.fullname" .) }}
{{- else }}
{{- .Values.logArchive.pvc.existingClaim }}
{{- end }}
{{- end }}

{{/* DOPS_LOG_ARCHIVE: the mount path for pvc/emptyDir, the URL for url. */}}
{{- define "dops.logArchive" -}}
{{- if eq .Values.logArchive.type "url" }}
{{- required "logArchive.url is required when logArchive.type is url" .Values.logArchive.url }}
{{- else }}
{{- "/var/lib/dops/logs" }}
{{- end }}
{{- end }}

{{/*
The operator's rules on dops resources, Jobs, Pods and Events (namespaced Role or ClusterRole).
Every verb is listed explicitly; see values.yaml rbac for why each is needed.
*/}}
{{- define "dops.operatorRules" -}}
- apiGroups: ["dops.io"]
  resources: ["delegatedoperations"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["dops.io"]
  resources: ["delegatedoperations/status"]
  verbs: ["get", "patch"]
# A Job's ownerReference to its operation sets blockOwnerDeletion; with the OwnerReferencesPermissionEnforcement
# admission plugin the API server only lets a client set it on an owner whose finalizers it may update.
- apiGroups: ["dops.io"]
  resources: ["delegatedoperations/finalizers"]
  verbs: ["update"]
- apiGroups: ["dops.io"]
  resources: ["delegationtargets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
{{- end }}

{{/*
The workers' rules: read operations and write their status, nothing else. No `patch` on the operation itself
(spec, labels, finalizers: the operator mirrors the run-state label), no targets (the Job's env carries what
the operator decided at admission), no pods (a Job retry pod knows its Job's earlier pods by name). Which
operation's status a worker may write is narrowed to its own by the ValidatingAdmissionPolicy
"<fullname>-worker-own-operation" (templates/admission-worker.yaml).
*/}}
{{- define "dops.workerRules" -}}
- apiGroups: ["dops.io"]
  resources: ["delegatedoperations"]
  verbs: ["get"]
- apiGroups: ["dops.io"]
  resources: ["delegatedoperations/status"]
  verbs: ["get", "patch"]
{{- end }}

{{/*
The operator pods' affinity: `affinity` when set; else, with more than one replica, a ReadWriteOnce log-archive
PVC (one node can mount it) keeps the replicas on one node (required), and anything else spreads them over nodes
(preferred), so that losing a node leaves a standby.
*/}}
{{- define "dops.operatorAffinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if gt (int64 .Values.replicas) 1 }}
{{- $rwoClaim := and (eq .Values.logArchive.type "pvc") (not (has "ReadWriteMany" .Values.logArchive.pvc.accessModes)) }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (merge (include "dops.selectorLabels" . | fromYaml) (dict "app.kubernetes.io/component" "operator"))) }}
{{- if $rwoClaim }}
{{- dict "podAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) | toYaml }}
{{- else }}
{{- dict "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) | toYaml }}
{{- end }}
{{- end }}
{{- end }}
