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

{{/* The `rbdcsi doctor` sidecar of the controller (monitoring.doctor): see monitoring.yaml. */}}
{{- define "rbdcsi.doctorSidecar" -}}
{{- $d := .Values.monitoring.doctor -}}
- name: doctor
  image: {{ include "rbdcsi.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - doctor
    - --config=/etc/rbdcsi/config.json
    - --cluster={{ $d.cluster }}
    - --secret-dir=/etc/rbdcsi-doctor
    {{- range $d.pools }}
    - --pool={{ . }}
    {{- end }}
    - --drivername={{ .Values.driverName }}
    - --kube-api
    - --textfile=/var/lib/rbdcsi/{{ .Values.driverName }}/doctor.prom
    - --interval={{ $d.intervalSeconds }}
    - --ceph-timeout={{ add .Values.cephConnectTimeout .Values.cephOpTimeout }}
  securityContext:
    {{- include "rbdcsi.restricted" . | nindent 4 }}
  resources:
    {{- toYaml $d.resources | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/rbdcsi
      readOnly: true
    - name: doctor
      mountPath: /var/lib/rbdcsi/{{ .Values.driverName }}
    - name: doctor-secret
      mountPath: /etc/rbdcsi-doctor
      readOnly: true
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* Prefix of cluster-scoped names (ClusterRoles, ClusterRoleBindings): one release per zone
sets its own, e.g. rbdcsi-zone-a, so releases do not collide. */}}
{{- define "rbdcsi.clusterPrefix" -}}
{{ default "rbdcsi" .Values.clusterScopedPrefix }}
{{- end -}}
