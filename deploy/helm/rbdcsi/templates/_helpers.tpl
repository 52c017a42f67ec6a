{{/* Labels on every object. */}}
{{- define "rbdcsi.labels" -}}
app.kubernetes.io/part-of: rbdcsi
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The rbdcsi image reference. */}}
{{- define "rbdcsi.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* A sidecar image reference: include "rbdcsi.sidecarImage" .Values.sidecars.provisioner */}}
{{- define "rbdcsi.sidecarImage" -}}
{{ printf "%s:%s" .repository .tag }}
{{- end -}}

{{/* Namespace of the Ceph user Secret. */}}
{{- define "rbdcsi.secretNamespace" -}}
{{ default .Release.Namespace .Values.cephSecret.namespace }}
{{- end -}}

{{/* The restricted container securityContext used by the controller pod's containers. */}}
{{- define "rbdcsi.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Prefix of cluster-scoped names (ClusterRoles, ClusterRoleBindings): one release per zone
sets its own, e.g. rbdcsi-zone-a, so releases do not collide. */}}
{{- define "rbdcsi.clusterPrefix" -}}
{{ default "rbdcsi" .Values.clusterScopedPrefix }}
{{- end -}}
