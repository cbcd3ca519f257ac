{{/*
Helpers of the remex chart. The chart uses only what tests/helm/render
implements (see helm/remex/README.md): text/template, sprig, include, tpl,
required, toYaml, fromYaml, toJson; no lookup, no .Files.Glob.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "remex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release
name when it contains the chart name, else RELEASE-CHART. At most 63
characters (DNS label).
*/}}
{{- define "remex.fullname" -}}
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

{{/* CHART-VERSION, as in the helm.sh/chart label. */}}
{{- define "remex.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the server's pods; never change them after install. */}}
{{- define "remex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of every object. */}}
{{- define "remex.labels" -}}
helm.sh/chart: {{ include "remex.chart" . }}
{{ include "remex.selectorLabels" . }}
app.kubernetes.io/version: {{ include "remex.imageTag" . | quote }}
app.kubernetes.io/part-of: remex
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "remex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remex.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "remex.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "remex.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "remex.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Where the ConfigMap's config.yaml is mounted. */}}
{{- define "remex.configDir" -}}
/etc/remex
{{- end }}

{{/*
The server's config file: .Values.config as YAML. Only keys the server
knows are allowed (values.schema.json mirrors them).
*/}}
{{- define "remex.configFile" -}}
{{ toYaml .Values.config }}
{{- end }}

{{/* The pod's grace: preStop pause + drain grace + margin, in seconds. */}}
{{- define "remex.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown }}
{{- add (int $s.preStopSleepSeconds) (int $s.graceSeconds) (int $s.extraSeconds) }}
{{- end }}

{{/* The server's command line, after the binary. */}}
{{- define "remex.args" -}}
- --listen=0.0.0.0:{{ int .Values.service.port }}
- --config={{ include "remex.configDir" . }}/config.yaml
- --shutdown-grace={{ int .Values.shutdown.graceSeconds }}s
{{- if .Values.metrics.enabled }}
- --metrics-listen=0.0.0.0:{{ int .Values.metrics.port }}
{{- else }}
- --metrics-listen=none
{{- end }}
{{- if .Values.plugins.enabled }}
{{- range .Values.plugins.files }}
- --plugin={{ $.Values.plugins.mountPath }}/{{ . }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
