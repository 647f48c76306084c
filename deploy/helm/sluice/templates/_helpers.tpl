{{/* Names and labels. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.configMapName" -}}
{{- if .Values.pipeline.existingConfigMap -}}
{{- .Values.pipeline.existingConfigMap -}}
{{- else -}}
{{- printf "%s-pipeline" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
What the chart reads from the pipeline: from pipeline.config, or, with an
existing ConfigMap, from pipeline.source / shutdownTimeoutMs / gateway.
Returned as YAML: {source: {...}, shutdownTimeoutMs: N, gateway: bool}.
*/}}
{{- define "sluice.pipelineFacts" -}}
{{- $p := .Values.pipeline -}}
{{- if and $p.existingConfigMap $p.config -}}
{{- fail "pipeline: set either config or existingConfigMap, not both" -}}
{{- end -}}
{{- if $p.existingConfigMap -}}
source: {{ default dict $p.source | toJson }}
shutdownTimeoutMs: {{ int (default 30000 $p.shutdownTimeoutMs) }}
gateway: {{ $p.gateway | default false }}
{{- else -}}
{{- if not $p.config -}}
{{- fail "pipeline.config is empty: give the pipeline (as in pipelines/*.yaml) or pipeline.existingConfigMap" -}}
{{- end -}}
{{- $gw := default dict $p.config.gateway -}}
source: {{ default dict $p.config.source | toJson }}
shutdownTimeoutMs: {{ int (default 30000 $p.config.shutdown_timeout_ms) }}
gateway: {{ $gw.enabled | default false }}
{{- end -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the drain timeout rounded up, plus the margin. */}}
{{- define "sluice.gracePeriod" -}}
{{- $f := include "sluice.pipelineFacts" . | fromYaml -}}
{{- $margin := int .Values.drainMarginSeconds -}}
{{- if lt $margin 5 -}}
{{- fail "drainMarginSeconds must be at least 5: the drain needs time after shutdown_timeout_ms to exit" -}}
{{- end -}}
{{- $ms := int $f.shutdownTimeoutMs -}}
{{- add (div (add $ms 999) 1000) $margin -}}
{{- end -}}

{{/* A string with ${...} cannot be read by KEDA, which does not see the pod's environment. */}}
{{- define "sluice.noEnvRef" -}}
{{- if contains "${" (toString .value) -}}
{{- fail (printf "%s is %q: KEDA cannot resolve ${VAR}; set %s" .what .value .set) -}}
{{- end -}}
{{- end -}}

{{/* The securityContext of every container: nothing to escalate to, nothing to write but its volumes. */}}
{{- define "sluice.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
